"""Fixtures shared across test folders: the real Triton server and PostgreSQL, started once per session.

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
from gateway_helpers import (
    TritonFixture,
    build_repositories,
    free_port,
    tiny_classifier,
    triton_options,
)

from serving.postgres import PostgresCluster
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


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A real PostgreSQL server (Debian's package), throwaway, for the whole session.

    Tests take a fresh database each (``postgres.create_database``), so none sees another's rows.
    """
    try:
        cluster = PostgresCluster(free_port()).start()
    except FileNotFoundError as exc:
        pytest.fail(f"{exc} (.ci/run installs it)")
    try:
        yield cluster
    finally:
        cluster.stop()
