"""Real-Triton fixture for the scorer's end-to-end tests.

It reuses the gateway tests' helpers (the tiny exported model and its repositories, built with the
export package's own functions) and starts the server with the SAME launcher ``make triton`` uses.
Session-scoped: one Triton start serves every scorer test.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# --import-mode=importlib leaves sys.path alone: this folder's helpers, and the gateway tests' ones
# (the tiny exported model and its repositories), are imported by module name.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import build_repositories, free_port, tiny_classifier
from scoring_helpers import PROJECT_ROOT, write_photos

from serving.triton import TritonLauncher, TritonOptions


@pytest.fixture(scope="session")
def scoring_triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonOptions]:
    backend_venv = PROJECT_ROOT / ".venv-triton"
    if not (backend_venv / "bin" / "python").exists():
        pytest.fail(f"{backend_venv} missing: run `make setup` (the Triton server and its backend venv)")
    root = tmp_path_factory.mktemp("scoring-triton")
    options = TritonOptions(
        repository=build_repositories(root, tiny_classifier()),
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
        yield options
    finally:
        launcher.stop()


@pytest.fixture(scope="session")
def photos_300(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    folder = tmp_path_factory.mktemp("photos300")
    return folder, write_photos(folder, 300)
