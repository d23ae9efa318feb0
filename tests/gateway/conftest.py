"""The gateway in-process under uvicorn, in front of the session's real Triton (tests/conftest.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

# --import-mode=importlib leaves sys.path alone; the tests here share one helper module.
sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import GatewayServer, gateway_settings, wait_ready


@pytest.fixture(scope="session")
def gateway(triton: Any) -> Iterator[GatewayServer]:
    with GatewayServer(gateway_settings(triton.grpc_url)) as server:
        yield server


@pytest.fixture
def client(gateway: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        wait_ready(http)
        yield http
