"""Fixtures shared across test folders: the real Triton server, started once per session.

It serves a tiny model exported with the export package's own functions, through the SAME launcher
``make triton`` uses (serving.triton), on free ports. The helpers behind it live in
tests/gateway/gateway_helpers.py (imported by module name: --import-mode=importlib leaves sys.path alone).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "gateway"))
from gateway_helpers import build_repositories, free_port, tiny_classifier

from serving.triton import TritonLauncher, TritonOptions

PROJECT_ROOT = Path(__file__).resolve().parents[1]


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
