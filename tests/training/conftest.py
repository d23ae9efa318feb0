"""Shared fixtures for tests/training. Data fixtures first; other areas append theirs below."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.synthetic import generate_synthetic


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic set, ``cat/`` + ``dog/``, 40 images each, sides 48–128 px. Do not modify it."""
    return generate_synthetic(tmp_path_factory.mktemp("synthetic"), 40, seed=0, size_range=(48, 128))
