"""Fixtures shared across test folders: the real Triton server, started once per session.

It serves a tiny model exported with the export package's own functions, through the SAME launcher
``make triton`` uses (serving.triton), on free ports. The helpers behind it live in
tests/gateway/gateway_helpers.py (imported by module name: --import-mode=importlib leaves sys.path alone).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "gateway"))
from gateway_helpers import TritonFixture, build_repositories, tiny_classifier, triton_options

from serving.triton import TritonLauncher


@pytest.fixture(scope="session")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonFixture]:
    root = tmp_path_factory.mktemp("triton")
    classifier = tiny_classifier()
    repository = build_repositories(root, classifier)
    launcher = TritonLauncher(triton_options(root, repository))
    launcher.start()
    try:
        yield TritonFixture(launcher, repository, classifier)
    finally:
        launcher.stop()
