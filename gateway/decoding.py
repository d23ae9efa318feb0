"""Upload bytes → model input, on bounded thread pools so the event loop never decodes.

The decode itself is :func:`imaging.load_for_model`, the function training's eval transform and
the training cache use, so served inputs are prepared exactly as evaluated ones.

Decoding cannot be interrupted once Pillow runs, so its cost is bounded before it starts: the header
gives pixels and JPEG scans (:func:`imaging.inspect_image`), and a file over the caps is refused
without decoding. What is left is bounded, but one upload near the cap still costs seconds of CPU
under load, and Pillow holds the GIL while it decodes; those ("heavy": cost over ``heavy_cost``)
decode in a low-priority worker process with a short queue, killed at the request's deadline
(gateway/decode_worker.py), so a stream of them neither queues ordinary photos nor stalls the loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from gateway.decode_worker import HeavyDecodeWorker
from gateway.settings import Settings
from imaging import DecodeLimits, inspect_image, prepare_for_model

T = TypeVar("T")


@dataclass(frozen=True)
class DecodedUpload:
    image: np.ndarray  # uint8 [S, S, 3]
    sha256: str  # of the uploaded bytes, for logs; the bytes themselves are never logged
    original_size: tuple[int, int]  # (width, height) as uploaded
    size: int  # bytes uploaded


class DecodeBusyError(Exception):
    """The heavy-decode lane is full: the upload is fine, the gateway has no CPU for it now."""


@dataclass
class _Lane:
    pool: ThreadPoolExecutor
    threads: int
    pending: int = 0  # running or waiting
    started: dict[int, float] = field(default_factory=dict)  # thread id → start of its current decode
    lock: threading.Lock = field(default_factory=threading.Lock)

    def timed(self, fn: Callable[[], T]) -> T:
        ident = threading.get_ident()
        with self.lock:
            self.started[ident] = time.monotonic()
        try:
            return fn()
        finally:
            with self.lock:
                self.started.pop(ident, None)

    def stalled(self, stall_s: float) -> int:
        now = time.monotonic()
        with self.lock:
            return sum(1 for began in self.started.values() if now - began > stall_s)


class Decoder:
    def __init__(
        self,
        *,
        threads: int,
        max_bytes: int,
        max_pixels: int,
        max_jpeg_scans: int = 64,
        max_cost: float = 1000.0,
        heavy_cost: float = 150.0,
        heavy_queue: int = 2,
        stall_s: float = 1.0,
    ) -> None:
        self.limits = DecodeLimits(
            max_bytes=max_bytes, max_pixels=max_pixels, max_jpeg_scans=max_jpeg_scans, max_cost=max_cost
        )
        self.heavy_cost = heavy_cost
        self.heavy_queue = heavy_queue
        self.stall_s = stall_s
        self._light = _Lane(ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode"), threads)
        self._heavy = HeavyDecodeWorker(self.limits)
        self._heavy_pending = 0

    async def decode(self, data: bytes, size: int, sha256: str | None = None) -> DecodedUpload:
        """Raises :class:`imaging.ImageError` for a bad or too costly file, :class:`DecodeBusyError`
        when the heavy lane is full. Hashing runs in the pool too, unless given."""
        loop = asyncio.get_running_loop()
        # The header only (no pixel is decoded), but off the loop all the same: Pillow reads PNG text
        # chunks while opening. A refused bomb costs this and nothing more.
        cost = await loop.run_in_executor(self._light.pool, self._inspect, data)
        if cost > self.heavy_cost:
            return await self._decode_heavy(data, size, sha256)
        self._light.pending += 1
        try:
            # A decode still waiting in the queue is dropped when the request is cancelled (deadline or
            # client gone): run_in_executor cancels a future that has not started.
            return await loop.run_in_executor(
                self._light.pool, self._light.timed, lambda: self._decode(data, size, sha256)
            )
        finally:
            self._light.pending -= 1

    async def _decode_heavy(self, data: bytes, size: int, sha256: str | None) -> DecodedUpload:
        if self._heavy_pending >= self.heavy_queue:
            raise DecodeBusyError
        self._heavy_pending += 1
        try:
            image, original_size = await self._heavy.decode(data, size)
        finally:
            self._heavy_pending -= 1
        return DecodedUpload(image, sha256 or hashlib.sha256(data).hexdigest(), original_size, len(data))

    def start(self) -> None:
        """Start the heavy-decode process now, not with the first heavy upload."""
        self._heavy.start()

    def _inspect(self, data: bytes) -> float:
        return inspect_image(data, limits=self.limits).cost

    def _decode(self, data: bytes, size: int, sha256: str | None) -> DecodedUpload:
        image, decoded = prepare_for_model(data, size, limits=self.limits)
        return DecodedUpload(
            image, sha256 or hashlib.sha256(data).hexdigest(), decoded.original_size, len(data)
        )

    @property
    def saturated(self) -> bool:
        """Every ordinary decode thread has been busy with one file for longer than ``stall_s``:
        a new photo would wait, so readiness turns 503 and a load balancer routes around us."""
        return self._light.stalled(self.stall_s) >= self._light.threads

    def describe(self) -> dict[str, int]:
        return {
            "pending": self._light.pending,
            "stalled": self._light.stalled(self.stall_s),
            "heavy_pending": self._heavy_pending,
            "heavy_killed": self._heavy.kills,
        }

    def close(self) -> None:
        self._light.pool.shutdown(wait=False, cancel_futures=True)
        self._heavy.close()


def decoder_for(settings: Settings) -> Decoder:
    """The gateway's decoder as its settings describe it (threads, limits, heavy lane, stall time);
    the app and the benchmarks' decode-only bound build it here, so both decode the same way."""
    return Decoder(
        threads=settings.decode_threads,
        max_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_pixels,
        max_jpeg_scans=settings.max_jpeg_scans,
        max_cost=settings.max_decode_cost,
        heavy_cost=settings.decode_heavy_cost,
        heavy_queue=settings.decode_heavy_queue,
        stall_s=settings.decode_stall_s,
    )
