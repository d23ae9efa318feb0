"""Fixtures shared across test folders: the real Triton server and PostgreSQL, started once per session,
and the hook that marks every test needing a Triton.

Triton serves a tiny model written by export's own repository writer, through the SAME launcher
``make triton`` uses (serving.triton), on free ports. The helpers behind it live in tests/support/.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from serving.postgres import PostgresCluster
from serving.processes import free_port
from tests.support.triton import TritonFixture, running_triton, tiny_classifier

# Fixtures that start Triton servers: a test requesting one, directly or through the fixtures it
# uses (``item.fixturenames`` is that closure), needs a Triton whatever its own marks say.
TRITON_FIXTURES = frozenset({"triton", "hardening_triton", "topology"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark Triton-using tests ``triton`` and ``slow``, so ``-m "not triton"`` really starts no server."""
    for item in items:
        if TRITON_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.triton)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonFixture]:
    with running_triton(tmp_path_factory.mktemp("triton"), tiny_classifier()) as server:
        yield server


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
