"""Real-Triton fixtures: a tiny model exported by the export package, served by the SAME launcher
``make triton`` uses (serving.triton) on free ports, and the gateway in-process under uvicorn.

Session-scoped: one Triton start (~2 s) serves every integration test.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import torch

# --import-mode=importlib leaves sys.path alone; the tests here share one helper module.
sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import (
    GatewayServer,
    build_repositories,
    free_port,
    gateway_settings,
    tiny_classifier,
    wait_ready,
)

from serving.triton import TritonLauncher, TritonOptions

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class TritonFixture:
    launcher: TritonLauncher
    repository: Path
    classifier: torch.nn.Module

    @property
    def grpc_url(self) -> str:
        return self.launcher.options.grpc_url

    @property
    def http_url(self) -> str:
        return f"{self.launcher.options.host}:{self.launcher.options.http_port}"


@pytest.fixture(scope="session")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonFixture]:
    backend_venv = PROJECT_ROOT / ".venv-triton"
    if not (backend_venv / "bin" / "python").exists():
        pytest.fail(f"{backend_venv} missing: run `make setup` (the Triton server and its backend venv)")
    root = tmp_path_factory.mktemp("triton")
    classifier = tiny_classifier()
    repository = build_repositories(root, classifier)
    options = TritonOptions(
        repository=repository,
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
        backend_venv=backend_venv,
        backends_dir=PROJECT_ROOT / "build" / "triton_backends",
        log_file=root / "triton.log",
        pid_file=root / "triton.pid",
        ready_timeout_s=90,
    )
    launcher = TritonLauncher(options)
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
