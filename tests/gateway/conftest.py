"""The gateway in-process under uvicorn, in front of the session's real Triton (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.gateway import GatewayServer, gateway_settings, ready_client


@pytest.fixture(scope="session")
def gateway(triton: Any) -> Iterator[GatewayServer]:
    with GatewayServer(gateway_settings(triton.grpc_url)) as server:
        yield server


@pytest.fixture
def client(gateway: GatewayServer) -> Iterator[httpx.Client]:
    with ready_client(gateway.url) as http:
        yield http
