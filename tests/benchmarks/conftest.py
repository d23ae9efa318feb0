"""Fixtures for the benchmark tests: a small labelled photo folder generated here (pets-dev is never
used by tests) and a tiny checkpoint standing in for a trained one."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _photo(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:120, 0:160].astype(np.float32)
    channels = [
        128 + 60 * np.sin(rng.uniform(-1, 1) * xx / 17 + rng.uniform(-1, 1) * yy / 13) for _ in range(3)
    ]
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def labelled_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for i in range(48):
        label = ("cat", "dog")[i % 2]
        (root / label).mkdir(exist_ok=True)
        (root / label / f"{label}{i:03d}.jpg").write_bytes(_photo(i))
    return root
