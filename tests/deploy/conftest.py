"""Fixtures for the deployment tests (helpers live in deploy_helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# --import-mode=importlib leaves sys.path alone; the tests here share one helper module.
sys.path.insert(0, str(Path(__file__).parent))
from deploy_helpers import copy_repo


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A private copy of the deployment files, for tests that break one on purpose."""
    return copy_repo(tmp_path / "repo")
