"""The prediction log's backends: every store test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

_names = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def log_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty prediction log: a SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "p.db")
    cluster: Any = request.getfixturevalue("postgres")
    return str(cluster.create_database(f"log_{next(_names)}"))
