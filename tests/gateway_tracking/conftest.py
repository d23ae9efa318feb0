"""A gateway with tracking on (API key set, fast gauge refresh) in front of the session's Triton."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import GatewayServer, gateway_settings, wait_ready


@pytest.fixture
def tracked_gateway(triton: Any, tmp_path: Path) -> Iterator[tuple[httpx.Client, Path]]:
    db = tmp_path / "predictions.db"
    settings = gateway_settings(
        triton.grpc_url,
        tracking_db=db,
        stats_snapshot_path=tmp_path / "stats.json",
        api_key="s3cret",
        tracking_refresh_s=0.2,
    )
    with GatewayServer(settings) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        wait_ready(client)
        yield client, db
