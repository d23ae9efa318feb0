"""``PerformanceTracker``: the original design's API (section 5.3) over the durable prediction log.

tracker = get_tracker()
tracker.log_prediction(prediction="cat", confidence=0.95, latency_ms=45.2, ground_truth="cat")
stats = tracker.get_current_stats()
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from contract.paths import PREDICTIONS_DB
from tracking.stats import stats_from_columns
from tracking.store import PredictionRecord, open_store

DEFAULT_DB = Path(PREDICTIONS_DB)
_WINDOW = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_window(text: str | None) -> float | None:
    """``"1h"``, ``"30m"``, ``"7d"`` → seconds; None or ``"all"`` → no window."""
    if text is None or text == "all":
        return None
    match = _WINDOW.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"window must look like 30s, 15m, 1h, 7d or 'all', got {text!r}")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


class PerformanceTracker:
    def __init__(
        self, db_path: Path | str = DEFAULT_DB, class_names: Sequence[str] = (), *, pool_size: int = 4
    ) -> None:
        """``db_path``: a SQLite file or a ``postgresql://`` URL (``tracking.store.open_store``).

        ``class_names``: the served model's labels; until they are known, the log's own classes.
        """
        self.store = open_store(db_path, pool_size=pool_size)
        self._class_names = tuple(class_names)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._class_names or self.store.predicted_classes()

    @class_names.setter
    def class_names(self, names: Sequence[str]) -> None:
        self._class_names = tuple(names)

    def log_prediction(
        self,
        prediction: str,
        confidence: float,
        latency_ms: float,
        ground_truth: str | None = None,
        *,
        request_id: str | None = None,
        model_version: str | None = None,
        image_sha256: str | None = None,
        image_bytes: int | None = None,
        image_width: int | None = None,
        image_height: int | None = None,
        brightness: float | None = None,
        client_request_id: str | None = None,
    ) -> str:
        """Store one prediction durably and return its id (the gateway passes its request_id)."""
        record_id = request_id or uuid.uuid4().hex
        self.store.insert(
            PredictionRecord(
                id=record_id,
                predicted_class=prediction,
                confidence=confidence,
                latency_ms=latency_ms,
                model_version=model_version,
                image_sha256=image_sha256,
                image_bytes=image_bytes,
                image_width=image_width,
                image_height=image_height,
                brightness=brightness,
                true_label=ground_truth,
                client_request_id=client_request_id,
            )
        )
        return record_id

    def add_feedback(self, request_id: str, true_label: str) -> bool:
        if true_label not in self.class_names:
            raise ValueError(f"unknown label {true_label!r}; expected one of {list(self.class_names)}")
        return self.store.add_feedback(request_id, true_label)

    def get_current_stats(self, window: str | None = None) -> dict[str, Any]:
        window_s = parse_window(window)
        since = time.time() - window_s if window_s is not None else None
        # Streamed columns, not rows: the window may hold ~10^6 predictions (tracking/stats.py).
        stats = stats_from_columns(self.store.window_columns(since), self.class_names)
        stats["window"] = window or "all"
        stats["generated_at"] = time.time()
        return stats

    def write_snapshot(self, path: Path, window: str | None = None) -> Path:
        """The original JSON persistence, written atomically: readers never see half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(self.get_current_stats(window), fh, indent=2)
                fh.flush()
                os.fsync(fh.fileno())
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def close(self) -> None:
        self.store.close()


_trackers: dict[str, PerformanceTracker] = {}


def get_tracker(
    db_path: Path | str | None = None, class_names: Sequence[str] | None = None
) -> PerformanceTracker:
    """One tracker per database in this process.

    Which one: ``db_path``, else ``TRACKING_DATABASE_URL`` (PostgreSQL), else ``TRACKING_DB``
    (SQLite), else run/predictions.db.
    """
    location = str(
        db_path or os.environ.get("TRACKING_DATABASE_URL") or os.environ.get("TRACKING_DB") or DEFAULT_DB
    )
    key = location if location.startswith(("postgresql://", "postgres://")) else str(Path(location).resolve())
    tracker = _trackers.get(key)
    if tracker is None:
        tracker = _trackers[key] = PerformanceTracker(key, class_names or ())
    elif class_names is not None:
        tracker.class_names = tuple(class_names)
    return tracker
