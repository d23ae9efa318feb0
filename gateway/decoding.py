"""Upload bytes → model input, on a bounded thread pool so the event loop never decodes.

The decode itself is :func:`imaging.load_for_model`, the function training's eval transform and
the training cache use, so served inputs are prepared exactly as evaluated ones.
"""

from __future__ import annotations

import asyncio
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from imaging import DecodeLimits, prepare_for_model


@dataclass(frozen=True)
class DecodedUpload:
    image: np.ndarray  # uint8 [S, S, 3]
    sha256: str  # of the uploaded bytes, for logs; the bytes themselves are never logged
    original_size: tuple[int, int]  # (width, height) as uploaded
    size: int  # bytes uploaded


class Decoder:
    def __init__(self, *, threads: int, max_bytes: int, max_pixels: int) -> None:
        self.limits = DecodeLimits(max_bytes=max_bytes, max_pixels=max_pixels)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode")

    async def decode(self, data: bytes, size: int, sha256: str | None = None) -> DecodedUpload:
        """Raises :class:`imaging.ImageError` for a bad file. Hashing runs in the pool too, unless given."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._decode, data, size, sha256)

    def _decode(self, data: bytes, size: int, sha256: str | None) -> DecodedUpload:
        image, decoded = prepare_for_model(data, size, limits=self.limits)
        return DecodedUpload(
            image, sha256 or hashlib.sha256(data).hexdigest(), decoded.original_size, len(data)
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
