"""Fixtures for the hardening tests: the real Triton + gateway stack of tests/gateway, built by the
SAME helpers (tests/support/), plus the gateway as its own OS process (``python -m gateway``, what
users run) so its memory can be measured apart from pytest's.

Triton here is this folder's own session instance, ``hardening_triton``: the fault tests stop and
start dedicated ones and never touch it.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import torch

from tests.hardening.hardening_helpers import GatewayProcess, start_gateway_process, stop_gateway_process
from tests.hardening.results import FIGURES, Figures, results_path
from tests.support.gateway import GatewayServer, gateway_settings, ready_client
from tests.support.triton import TritonFixture, running_triton, tiny_classifier


@pytest.fixture(scope="session")
def classifier() -> torch.nn.Module:
    return tiny_classifier()


@pytest.fixture(scope="session")
def hardening_triton(
    tmp_path_factory: pytest.TempPathFactory, classifier: torch.nn.Module
) -> Iterator[TritonFixture]:
    """This folder's own Triton (not the suite's ``triton``): what these tests do to it stays here."""
    with running_triton(tmp_path_factory.mktemp("hardening_triton"), classifier) as server:
        yield server


@pytest.fixture(scope="session")
def gateway(hardening_triton: TritonFixture) -> Iterator[GatewayServer]:
    with GatewayServer(gateway_settings(hardening_triton.grpc_url)) as server:
        yield server


@pytest.fixture
def client(gateway: GatewayServer) -> Iterator[httpx.Client]:
    with ready_client(gateway.url) as http:
        yield http


@pytest.fixture(scope="module")
def gateway_process(
    hardening_triton: TritonFixture, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    log_file = tmp_path_factory.mktemp("gateway_process") / "gateway.log"
    gateway = start_gateway_process(
        hardening_triton.grpc_url, log_file, MAX_UPLOAD_BYTES=str(2 * 1024 * 1024), MAX_PIXELS="4000000"
    )
    try:
        yield gateway
    finally:
        stop_gateway_process(gateway)


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    """Rows for docs/reliability/hardening.json, written at the end when HARDENING_RESULTS is set."""
    yield FIGURES
    path = results_path()
    if path is not None:
        FIGURES.write(path)
