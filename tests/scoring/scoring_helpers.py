"""Helpers shared by the scorer tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

from tests.support.photos import photo

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def write_photos(folder: Path, count: int, *, size: tuple[int, int] = (160, 120)) -> list[Path]:
    """``count`` small synthetic JPEGs spread over a few subfolders (the scorer recurses)."""
    paths = []
    for i in range(count):
        path = folder / f"album{i % 4}" / f"photo{i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(photo(i, size=size))
        paths.append(path)
    return paths
