"""The gateway's side of performance tracking: prediction log, response cache, drift and live quality.

Prediction-log rows go through a group-commit writer (tracking/batch_writer.py): /predict queues
its row and answers; the writer commits queued rows every TRACKING_FLUSH_INTERVAL_MS, many per
transaction, and all of them on shutdown. A crash loses only rows not committed yet (at most
TRACKING_QUEUE_SIZE; normally the last flush interval's), never acknowledged feedback: feedback is
written synchronously, after this process's queued row for it is committed, and acknowledged only
after its own commit. Store calls run on worker threads, never on the event loop.
Live accuracy/F1 are read back from the shared log, so every gateway worker process exports the
same figures; drift is computed over this process's recent predictions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from contract.model import DRIFT_BASELINE_PARAMETER
from imaging import brightness
from tracking import PerformanceTracker
from tracking.batch_writer import BatchWriter
from tracking.cache import ResponseCache
from tracking.drift import Baseline, DriftMonitor
from tracking.store import PredictionRecord, StoreUnavailableError, UnknownPredictionError

log = structlog.get_logger("gateway.tracking")

_BRIGHTNESS_BUCKETS = tuple(float(b) for b in range(16, 256, 16))
_PIXEL_BUCKETS = (64**2, 128**2, 224**2, 320**2, 640**2, 1024**2, 2048**2, 4096**2, 8192**2)
# Feedback waits at most this long for this process's queued rows to commit, then answers 503.
FLUSH_WAIT_S = 5.0
# On shutdown, queued rows are committed; an unreachable database is retried this long, then they are dropped.
SHUTDOWN_FLUSH_S = 3.0
# Feedback for an id not in the log waits this much longer than the flush interval, then asks once more:
# another replica (or process) may have answered that prediction and still hold its row in its queue.
UNKNOWN_ID_MARGIN_S = 0.1


@dataclass(frozen=True, kw_only=True)
class TrackingOptions:
    db_path: Path
    quality_window: str
    snapshot_path: Path | None
    refresh_s: float
    snapshot_interval_s: float
    retention_max_age_s: float | None
    retention_max_rows: int | None
    retention_interval_s: float
    cache_ttl_s: float
    cache_max_entries: int
    drift_window: int
    database_url: str | None = None  # PostgreSQL; when set, db_path is not used
    pool_size: int = 4
    flush_interval_s: float = 0.005  # group commit of prediction rows (TRACKING_FLUSH_INTERVAL_MS)
    queue_size: int = 10_000  # rows accepted, not yet committed (TRACKING_QUEUE_SIZE)


class TrackingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.cache = Counter("prediction_cache_requests", "Response cache look-ups", ["result"], registry=r)
        self.live_accuracy = Gauge(
            "live_accuracy", "Accuracy of predictions with ground-truth feedback, over the window", registry=r
        )
        self.live_f1 = Gauge(
            "live_f1_macro", "Macro F1 from ground-truth feedback, over the window", registry=r
        )
        self.live_samples = Gauge(
            "live_labelled_samples", "Predictions with feedback in the quality window", registry=r
        )
        self.live_class_f1 = Gauge("live_f1", "Per-class F1 from feedback", ["true_class"], registry=r)
        self.class_ratio = Gauge(
            "drift_class_ratio",
            "Share of predictions per class, live vs baseline",
            ["predicted_class", "source"],
            registry=r,
        )
        self.mean_confidence = Gauge(
            "drift_mean_confidence", "Mean top-class confidence, live vs baseline", ["source"], registry=r
        )
        self.mean_brightness = Gauge(
            "drift_mean_brightness",
            "Mean input brightness (luma 0-255), live vs baseline",
            ["source"],
            registry=r,
        )
        self.psi = Gauge(
            "drift_psi", "Population stability index vs the export baseline", ["feature"], registry=r
        )
        self.drift_samples = Gauge("drift_window_samples", "Predictions in the drift window", registry=r)
        self.brightness = Histogram(
            "prediction_input_brightness",
            "Mean luma of model inputs",
            buckets=_BRIGHTNESS_BUCKETS,
            registry=r,
        )
        self.stats_computations = Counter(
            "stats_computations", "/stats answers computed from the log (not from the cache)", registry=r
        )
        self.pixels = Histogram(
            "prediction_input_pixels",
            "Width × height of uploads as stored",
            buckets=_PIXEL_BUCKETS,
            registry=r,
        )


class WriterCollector(Collector):
    """The group-commit writer's counters, read at scrape time (nothing added to the request path)."""

    def __init__(self, writer: BatchWriter) -> None:
        self.writer = writer

    def collect(self) -> list[Metric]:
        w = self.writer
        depth = GaugeMetricFamily(
            "prediction_log_queue_depth",
            "Prediction-log rows accepted and not yet committed (what a crash now would lose)",
            value=w.pending,
        )
        commits = CounterMetricFamily(
            "prediction_log_commits", "Group commits of prediction-log rows", value=w.commits
        )
        rows = CounterMetricFamily(
            "prediction_log_committed_rows", "Prediction-log rows committed", value=w.committed_rows
        )
        failures = CounterMetricFamily(
            "prediction_log_write_failures",
            "Group commits that failed on an unreachable/busy database (rows kept, retried)",
            value=w.failures,
        )
        dropped = CounterMetricFamily(
            "prediction_log_dropped",
            "Prediction-log rows never written: queue_full, rejected (by the database), shutdown "
            "(database unreachable at exit), closed",
            labels=["reason"],
        )
        for reason in ("queue_full", "rejected", "shutdown", "closed"):
            dropped.add_metric([reason], w.dropped[reason])
        return [depth, commits, rows, failures, dropped]


class TrackingService:
    def __init__(
        self, options: TrackingOptions, registry: CollectorRegistry, class_names: tuple[str, ...]
    ) -> None:
        self.options = options
        self.tracker = PerformanceTracker(
            options.database_url or options.db_path, class_names, pool_size=options.pool_size
        )
        self.cache = ResponseCache(ttl_s=options.cache_ttl_s, max_entries=options.cache_max_entries)
        self.drift = DriftMonitor(options.drift_window)
        self.metrics = TrackingMetrics(registry)
        self.writer = BatchWriter(
            self.tracker.store, flush_interval_s=options.flush_interval_s, max_pending=options.queue_size
        )
        registry.register(WriterCollector(self.writer))
        self._baseline_source: str | None = None
        self._task: asyncio.Task[None] | None = None
        # /stats: answers per window, reused for STATS_CACHE_S; one computation at a time.
        self._stats: dict[str, tuple[float, dict[str, Any]]] = {}
        self._stats_lock = asyncio.Lock()
        self._stats_waiting = 0

    def forget_stats(self) -> None:
        """Drop the cached /stats answers (new feedback changed them)."""
        self._stats.clear()

    async def stats(self, window: str, max_age_s: float, max_waiting: int = 4) -> dict[str, Any] | None:
        """The log's statistics over ``window``, at most ``max_age_s`` old; None when ``max_waiting``
        callers already wait for a computation (the caller answers 429).

        A full-log query takes ~170 ms at 30k rows and retention allows 1M: computed once per window per
        ``max_age_s`` and one at a time, concurrent /stats calls cannot crowd out /predict.
        """
        cached = self._stats.get(window)
        if cached is not None and time.monotonic() - cached[0] <= max_age_s:
            return cached[1]
        if self._stats_waiting >= max_waiting:
            return None
        self._stats_waiting += 1
        try:
            async with self._stats_lock:
                cached = self._stats.get(window)  # computed while this caller waited?
                if cached is not None and time.monotonic() - cached[0] <= max_age_s:
                    return cached[1]
                await self.flush()  # the predictions this process has answered are counted
                result: dict[str, Any] = await asyncio.to_thread(self.tracker.get_current_stats, window)
                self.metrics.stats_computations.inc()
                if len(self._stats) >= 64:
                    self._stats.clear()  # many distinct windows: keep the cache bounded
                self._stats[window] = (time.monotonic(), result)
                return result
        finally:
            self._stats_waiting -= 1

    def follow_model(self, class_names: tuple[str, ...], parameters: dict[str, str]) -> None:
        """Adopt the served model's labels and drift baseline (called whenever the model changes)."""
        self.tracker.class_names = class_names
        raw = parameters.get(DRIFT_BASELINE_PARAMETER)
        if raw == self._baseline_source:
            return
        self._baseline_source = raw
        baseline = None
        if raw:
            try:
                baseline = Baseline.from_parameter(raw)
            except (ValueError, KeyError, TypeError):
                log.warning("drift_baseline_unreadable")
        self.drift.set_baseline(baseline)
        self.metrics.class_ratio.clear()
        if baseline is not None:
            for name, ratio in baseline.predicted_ratio.items():
                self.metrics.class_ratio.labels(predicted_class=name, source="baseline").set(ratio)
            self.metrics.mean_confidence.labels(source="baseline").set(baseline.confidence_mean)
            self.metrics.mean_brightness.labels(source="baseline").set(baseline.brightness_mean)

    def observe_input(self, image: np.ndarray, width: int | None, height: int | None) -> float:
        light = float(brightness(image)[0])
        self.metrics.brightness.observe(light)
        if width and height:
            self.metrics.pixels.observe(width * height)
        return light

    async def record(self, body: dict[str, Any], *, sha256: str, size: int, light: float | None) -> None:
        """Queue one served prediction for the log (committed within the flush interval) and feed the
        drift window. Never waits for the database: a full queue drops the row (counted in
        ``prediction_log_dropped_total``); the answer is right either way."""
        if light is not None:
            self.drift.observe(body["predicted_class"], body["confidence"], light)
        self.writer.submit(
            PredictionRecord(
                id=body["request_id"],
                ts=time.time(),  # when it was answered, not when its group commits
                predicted_class=body["predicted_class"],
                confidence=body["confidence"],
                latency_ms=body["processing_time_ms"],
                model_version=str(body["model_version"]),
                image_sha256=sha256,
                image_bytes=size,
                brightness=light,
                client_request_id=body.get("client_request_id"),
            )
        )

    async def flush(self) -> None:
        """Wait until the rows this process has queued so far are committed.

        Raises StoreUnavailableError when that takes over FLUSH_WAIT_S (the database is down).
        """
        try:
            await asyncio.wait_for(asyncio.wrap_future(self.writer.flushed()), FLUSH_WAIT_S)
        except TimeoutError as exc:
            raise StoreUnavailableError("prediction log writer is behind (database unreachable?)") from exc

    async def add_feedback(self, request_id: str, true_label: str) -> bool:
        """Store a true label; returns after its COMMIT (True: newly stored, False: the same label was there).

        A prediction this process answered may still be queued: its row is committed first. An id
        not in the log at all is asked for once more after one flush interval (+ UNKNOWN_ID_MARGIN_S),
        because another replica (or worker process) may have answered it and not committed it yet;
        still unknown, UnknownPredictionError (404).
        """
        if self.writer.holds(request_id):
            await self.flush()
        try:
            return await asyncio.to_thread(self.tracker.add_feedback, request_id, true_label)
        except UnknownPredictionError:
            await asyncio.sleep(self.options.flush_interval_s + UNKNOWN_ID_MARGIN_S)
            return await asyncio.to_thread(self.tracker.add_feedback, request_id, true_label)

    def refresh_gauges(self) -> dict[str, Any]:
        stats = self.tracker.get_current_stats(self.options.quality_window)
        quality = stats["quality"]
        self.metrics.live_samples.set(quality["samples"])
        if quality["accuracy"] is not None:
            self.metrics.live_accuracy.set(quality["accuracy"])
            # F1 is None (no gauge value) for a class without labelled samples or predictions.
            if quality["macro"]["f1"] is not None:
                self.metrics.live_f1.set(quality["macro"]["f1"])
            for name, values in quality["per_class"].items():
                if values["f1"] is not None:
                    self.metrics.live_class_f1.labels(true_class=name).set(values["f1"])
        drift = self.drift.snapshot()
        self.metrics.drift_samples.set(drift["samples"])
        for name, ratio in drift["class_ratio"].items():
            if ratio is not None:
                self.metrics.class_ratio.labels(predicted_class=name, source="live").set(ratio)
        if drift["mean_confidence"] is not None:
            self.metrics.mean_confidence.labels(source="live").set(drift["mean_confidence"])
            self.metrics.mean_brightness.labels(source="live").set(drift["mean_brightness"])
        for feature, value in drift.get("psi", {}).items():
            self.metrics.psi.labels(feature=feature).set(value)
        stats["drift"] = drift
        return stats

    def write_snapshot(self) -> None:
        if self.options.snapshot_path is not None:
            self.tracker.write_snapshot(self.options.snapshot_path, self.options.quality_window)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        last_snapshot = last_retention = time.monotonic()
        while True:
            await asyncio.sleep(self.options.refresh_s)
            now = time.monotonic()
            try:
                await asyncio.to_thread(self.refresh_gauges)
                if now - last_snapshot >= self.options.snapshot_interval_s:
                    await asyncio.to_thread(self.write_snapshot)
                    last_snapshot = now
                if now - last_retention >= self.options.retention_interval_s:
                    deleted = await asyncio.to_thread(
                        self.tracker.store.apply_retention,
                        max_age_s=self.options.retention_max_age_s,
                        max_rows=self.options.retention_max_rows,
                    )
                    last_retention = now
                    if deleted:
                        log.info("prediction_log_compacted", deleted=deleted)
            except Exception as exc:
                log.error("tracking_refresh_failed", error=type(exc).__name__, detail=str(exc)[:200])

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            # Every queued row is committed before exit (requests in flight have finished by now).
            await asyncio.to_thread(self.writer.close, SHUTDOWN_FLUSH_S)
            await asyncio.to_thread(self.write_snapshot)  # the original design's JSON, on shutdown too
        finally:
            self.tracker.close()
