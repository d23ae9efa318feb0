"""Shared fixtures for tests/training. Data fixtures first; other areas append theirs below."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from training.synthetic import generate_synthetic


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic set, ``cat/`` + ``dog/``, 40 images each, sides 48–128 px. Do not modify it."""
    return generate_synthetic(tmp_path_factory.mktemp("synthetic"), 40, seed=0, size_range=(48, 128))


PhotoFactory = Callable[..., bytes]


def make_photo(
    fmt: str = "JPEG", mode: str = "RGB", size: tuple[int, int] = (64, 48), seed: int = 0, **options: Any
) -> bytes:
    """Encoded bytes of a unique (by ``seed``) smooth random image in ``mode``, saved as ``fmt``."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    img = Image.fromarray(small, "RGB").resize(size, Image.Resampling.BILINEAR)
    if mode == "RGBA":
        img.putalpha(Image.new("L", size, int(rng.integers(100, 256))))
    elif mode == "P":
        img = img.quantize(colors=32)
    elif mode != "RGB":
        img = img.convert(mode)
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture
def photo() -> PhotoFactory:
    """``photo(fmt="JPEG", mode="RGB", size=(64, 48), seed=0, **save_options) -> bytes``."""
    return make_photo


def write_class_folders(
    root: Path, n_per_class: int, *, start: int = 0, size: tuple[int, int] = (48, 40)
) -> Path:
    """``root/cat`` + ``root/dog`` with ``n_per_class`` distinct small JPEGs each (seeds from ``start``)."""
    for offset, label in enumerate(("cat", "dog")):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(start, start + n_per_class):
            seed = 2 * i + offset
            (folder / f"{label}_{i:05d}.jpg").write_bytes(make_photo(size=size, seed=seed, quality=80))
    return root


@pytest.fixture
def class_folders() -> Callable[..., Path]:
    """``class_folders(root, n_per_class, start=0, size=(48, 40)) -> root`` with distinct JPEGs."""
    return write_class_folders
