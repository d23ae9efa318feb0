"""What the gateway currently knows about the served model, kept fresh while it runs.

Triton may start after the gateway, restart under it, or load a new version; a background task
(and every readiness probe) re-checks, re-reads the metadata when the version set changes and
warms the model up before declaring it ready. The gateway is never ready without a model.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import numpy as np
import structlog

from contract.model_info import ModelInfo
from gateway.metrics import Metrics
from gateway.triton_backend import TritonBackend, TritonError

log = structlog.get_logger("gateway.model")

# No answered inference for this long, and a failed probe: Triton is taken to be unresponsive.
_SILENT_S = 2.0


@dataclass(frozen=True)
class Readiness:
    ready: bool
    triton_live: bool
    model_ready: bool
    reason: str


class ModelState:
    def __init__(self, backend: TritonBackend, metrics: Metrics, *, refresh_s: float) -> None:
        self.backend = backend
        self.metrics = metrics
        self.refresh_s = refresh_s
        self.info: ModelInfo | None = None
        self.warm = False
        self.last = Readiness(False, False, False, "not checked yet")
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._probe: asyncio.Task[Readiness] | None = None
        self._probe_at = 0.0

    async def check(self) -> Readiness:
        """Probe Triton now; (re)load metadata and warm up when needed. Never raises."""
        async with self._lock:
            self.last = await self._check()
            return self.last

    async def _check(self) -> Readiness:
        if not await self.backend.server_ready():
            self._forget("Triton is not reachable or not ready")
            return Readiness(False, False, False, "Triton is not reachable or not ready")
        if not await self.backend.model_ready():
            self._forget(f"model {self.backend.model_name!r} is not loaded")
            return Readiness(False, True, False, f"model {self.backend.model_name!r} is not loaded")
        try:
            versions = await self.backend.model_versions()
            if self.info is None or versions != self.info.versions:
                await self._load()
            elif not self.warm:
                await self._warm_up(self.info)
        except (TritonError, ValueError) as exc:
            reason = exc.detail if isinstance(exc, TritonError) else str(exc)
            self._forget(reason)
            log.warning("model_not_usable", reason=reason)
            return Readiness(False, True, False, reason)
        return Readiness(True, True, True, "ready")

    async def _load(self) -> None:
        info = await self.backend.model_info()
        previous = self.info.version if self.info else None
        self.info, self.warm = info, False
        await self._warm_up(info)
        self.metrics.set_model(info.name, info.version)
        log.info(
            "model_loaded",
            model_name=info.name,
            model_version=info.version,
            previous_version=previous,
            input=info.input_name,
            image_size=info.image_size,
            max_batch_size=info.max_batch_size,
            class_names=list(info.class_names),
        )

    async def _warm_up(self, info: ModelInfo) -> None:
        # One real inference: the first request must not pay for lazy initialisation.
        blank = np.zeros((1, info.image_size, info.image_size, 3), dtype=np.uint8)
        await self.backend.infer(blank, info, timeout_s=30.0)
        self.warm = True

    def _forget(self, reason: str) -> None:
        if self.info is not None or self.warm:
            log.warning("model_unready", reason=reason)
        # Keep the last known info for the API description, but never claim to be warm.
        self.warm = False

    def mark_unavailable(self, reason: str) -> None:
        """A request found Triton gone: stop claiming readiness until the next check succeeds.

        Not with several Triton servers: one of them going away fails a request (after its
        retries) while the others still serve; the periodic check, which asks until one server
        answers, decides whether the gateway as a whole is still ready.
        """
        if self.backend.replicated:
            log.warning("triton_request_unavailable", reason=reason)
            return
        self.last = Readiness(False, False, False, reason)
        self._forget(reason)

    def request_check(self, min_interval_s: float = 0.5) -> None:
        """Probe again now rather than at the next refresh (a request timed out, or found Triton
        unresponsive): one probe at a time, at most one per ``min_interval_s``. ``check`` never raises,
        so the task never ends with an exception nobody retrieves."""
        if self._probe is not None and not self._probe.done():
            return
        if time.monotonic() - self._probe_at < min_interval_s:
            return
        self._probe_at = time.monotonic()
        self._probe = asyncio.create_task(self.check(), name="model-probe")

    @property
    def silent(self) -> bool:
        """Triton has answered no inference (results or "queue full") for ``_SILENT_S``."""
        return time.monotonic() - self.backend.last_success > _SILENT_S

    @property
    def unresponsive(self) -> bool:
        """The last probe found Triton not answering (dead, or frozen) and no inference has been answered
        for ``_SILENT_S`` either: requests fail fast with 503. A probe that timed out only because the
        machine is busy does not count while inferences still come back."""
        return self.silent and not self.last.triton_live and self.last.reason != "not checked yet"

    @property
    def ready(self) -> bool:
        return self.last.ready and self.info is not None and self.warm

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="model-refresh")

    async def _loop(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.refresh_s)

    async def stop(self) -> None:
        for task in (self._task, self._probe):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
