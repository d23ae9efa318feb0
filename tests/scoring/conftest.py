"""Fixtures for the scorer's end-to-end tests against the session's real Triton (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from serving.triton import TritonOptions
from tests.scoring.scoring_helpers import write_photos


@pytest.fixture(scope="session")
def scoring_triton(triton: Any) -> TritonOptions:
    """The session's real Triton (tests/conftest.py): the same launcher `make triton` uses."""
    options: TritonOptions = triton.launcher.options
    return options


@pytest.fixture(scope="session")
def photos_300(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    folder = tmp_path_factory.mktemp("photos300")
    return folder, write_photos(folder, 300)
