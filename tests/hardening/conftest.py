"""Fixtures for the hardening tests: the real Triton + gateway stack of tests/gateway, built by the
SAME helpers (tests/gateway/gateway_helpers.py), plus the gateway as its own OS process
(``python -m gateway``, what users run) so its memory can be measured apart from pytest's.

Triton here is this folder's own session instance: the fault tests stop and start dedicated ones
and never touch it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch

# --import-mode=importlib leaves sys.path alone: share the gateway tests' helpers and our own.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import (
    GatewayServer,
    TritonFixture,
    build_repositories,
    gateway_settings,
    tiny_classifier,
    triton_options,
    wait_ready,
)
from hardening_helpers import GatewayProcess, start_gateway_process, stop_gateway_process
from results import FIGURES, Figures, results_path

from serving.triton import TritonLauncher


@pytest.fixture(scope="session")
def classifier() -> torch.nn.Module:
    return tiny_classifier()


@pytest.fixture(scope="session")
def triton(tmp_path_factory: pytest.TempPathFactory, classifier: torch.nn.Module) -> Iterator[TritonFixture]:
    root = tmp_path_factory.mktemp("hardening_triton")
    repository = build_repositories(root, classifier)
    launcher = TritonLauncher(triton_options(root, repository))
    launcher.start()
    try:
        yield TritonFixture(launcher, repository, classifier)
    finally:
        launcher.stop()


@pytest.fixture(scope="session")
def gateway(triton: TritonFixture) -> Iterator[GatewayServer]:
    with GatewayServer(gateway_settings(triton.grpc_url)) as server:
        yield server


@pytest.fixture
def client(gateway: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        wait_ready(http)
        yield http


@pytest.fixture(scope="module")
def gateway_process(
    triton: TritonFixture, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    log_file = tmp_path_factory.mktemp("gateway_process") / "gateway.log"
    gateway = start_gateway_process(
        triton.grpc_url, log_file, MAX_UPLOAD_BYTES=str(2 * 1024 * 1024), MAX_PIXELS="4000000"
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
