"""Heavy decodes in a worker process that can be killed at the request's deadline.

Pillow's JPEG decoder holds the GIL while it works: a 2-second decode in a thread stalled the event
loop for up to 160 ms at a time and slowed every other request of the process 4-fold. So uploads
whose header says they are expensive (a large progressive JPEG) decode here instead, one at a time, in
a low-priority process of their own. When the request's deadline passes (or its client leaves) the
process is killed, so the CPU stops being spent with the request, and a fresh one is started.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from imaging import DecodeLimits, ImageError, prepare_for_model

# The worker's nice value: it gets what CPU the gateway, Triton and ordinary decodes leave.
WORKER_NICE = 19


def _serve(conn: Connection, limits: DecodeLimits) -> None:
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICE)
    while True:
        try:
            data, size = conn.recv()
        except EOFError:
            return
        try:
            image, decoded = prepare_for_model(data, size, limits=limits)
            conn.send(("ok", image, decoded.original_size))
        except ImageError as exc:
            conn.send(("error", exc.kind, exc.detail))


class HeavyDecodeWorker:
    """One worker process; :meth:`decode` runs one file at a time (callers queue on a lock)."""

    def __init__(self, limits: DecodeLimits) -> None:
        self.limits = limits
        self._context = multiprocessing.get_context("spawn")  # never fork a process with gRPC threads
        self._process: Any = None
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()
        self.kills = 0

    def _start(self) -> None:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_serve, args=(child, self.limits), name="decode-heavy", daemon=True
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent

    def start(self) -> None:
        """Start the process now, so the first heavy upload does not wait for Python to start."""
        if self._process is None:
            self._start()

    async def decode(self, data: bytes, size: int) -> tuple[np.ndarray, tuple[int, int]]:
        async with self._lock:
            if self._process is None or not self._process.is_alive():
                self._start()
            conn = self._conn
            assert conn is not None
            try:
                conn.send((data, size))
                reply = await asyncio.to_thread(conn.recv)
            except asyncio.CancelledError:
                self._kill()  # deadline passed or client gone: stop spending CPU on it
                raise
            except (EOFError, OSError) as exc:
                self._kill()
                raise ImageError("corrupt", "the image could not be decoded") from exc
        if reply[0] == "error":
            raise ImageError(reply[1], reply[2])
        return reply[1], reply[2]

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(timeout=5)
            self.kills += 1
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None

    def close(self) -> None:
        self._kill()
