"""Deterministic synthetic photos, encoded in memory."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode(array: np.ndarray, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt, **kwargs)
    return buf.getvalue()


def photo(seed: int, size: tuple[int, int] = (320, 240), fmt: str = "JPEG") -> bytes:
    """A smooth synthetic photo (gradients + blobs): realistic enough for JPEG, deterministic."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    channels = []
    for _ in range(3):
        a, b, c = rng.uniform(-1, 1, 3)
        channels.append(128 + 60 * np.sin(a * xx / 37 + b * yy / 23 + c * 6))
    img = np.stack(channels, axis=-1)
    for _ in range(4):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(10, min(w, h) / 2)
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r**2
        img[mask] = rng.uniform(0, 255, 3)
    return encode(np.clip(img, 0, 255).astype(np.uint8), fmt)
