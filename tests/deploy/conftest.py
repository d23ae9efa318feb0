"""Fixtures for the deployment tests (helpers live in deploy_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.deploy_helpers import copy_repo


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A private copy of the deployment files, for tests that break one on purpose."""
    return copy_repo(tmp_path / "repo")
