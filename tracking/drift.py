"""Live drift signals against the baseline the export stored with the model.

The baseline (validation split, as the served model sees it) arrives through the Triton config
parameter ``drift_baseline``; live values come from a rolling window of recent predictions in this
process. PSI (population stability index) compares the confidence and brightness distributions
with the baseline's own bin edges: < 0.1 stable, 0.1–0.25 moderate shift, > 0.25 significant.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Empty bins would make PSI infinite; this floor is the usual remedy and keeps it finite.
_PSI_FLOOR = 1e-4


def psi(expected_fractions: Sequence[float], actual_counts: Sequence[int]) -> float:
    expected = np.clip(np.asarray(expected_fractions, dtype=np.float64), _PSI_FLOOR, None)
    actual = np.asarray(actual_counts, dtype=np.float64)
    if actual.sum() == 0:
        return 0.0
    actual = np.clip(actual / actual.sum(), _PSI_FLOOR, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


@dataclass(frozen=True)
class Baseline:
    predicted_ratio: dict[str, float]
    confidence_edges: tuple[float, ...]
    confidence_fractions: tuple[float, ...]
    confidence_mean: float
    brightness_edges: tuple[float, ...]
    brightness_fractions: tuple[float, ...]
    brightness_mean: float

    @classmethod
    def from_parameter(cls, text: str) -> Baseline:
        data: dict[str, Any] = json.loads(text)
        return cls(
            predicted_ratio={k: float(v) for k, v in data["predicted_ratio"].items()},
            confidence_edges=tuple(data["confidence"]["edges"]),
            confidence_fractions=tuple(data["confidence"]["fractions"]),
            confidence_mean=float(data["confidence"]["mean"]),
            brightness_edges=tuple(data["brightness"]["edges"]),
            brightness_fractions=tuple(data["brightness"]["fractions"]),
            brightness_mean=float(data["brightness"]["mean"]),
        )


class DriftMonitor:
    def __init__(self, window: int = 1000) -> None:
        self.window = window
        self._classes: deque[str] = deque(maxlen=window)
        self._confidence: deque[float] = deque(maxlen=window)
        self._brightness: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()
        self.baseline: Baseline | None = None

    def set_baseline(self, baseline: Baseline | None) -> None:
        """A new model means a new reference: the window starts over."""
        with self._lock:
            self.baseline = baseline
            self._classes.clear()
            self._confidence.clear()
            self._brightness.clear()

    def observe(self, predicted_class: str, confidence: float, brightness: float) -> None:
        with self._lock:
            self._classes.append(predicted_class)
            self._confidence.append(confidence)
            self._brightness.append(brightness)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            classes, conf, light = list(self._classes), np.array(self._confidence), np.array(self._brightness)
            baseline = self.baseline
        n = len(classes)
        names = sorted(set(classes) | set(baseline.predicted_ratio if baseline else ()))
        out: dict[str, Any] = {
            "samples": n,
            "class_ratio": {c: (classes.count(c) / n if n else None) for c in names},
            "mean_confidence": float(conf.mean()) if n else None,
            "mean_brightness": float(light.mean()) if n else None,
            "baseline": None,
        }
        if baseline is not None:
            out["baseline"] = {
                "class_ratio": baseline.predicted_ratio,
                "mean_confidence": baseline.confidence_mean,
                "mean_brightness": baseline.brightness_mean,
            }
            if n:
                conf_counts, _ = np.histogram(
                    np.clip(conf, baseline.confidence_edges[0], baseline.confidence_edges[-1]),
                    bins=baseline.confidence_edges,
                )
                light_counts, _ = np.histogram(
                    np.clip(light, baseline.brightness_edges[0], baseline.brightness_edges[-1]),
                    bins=baseline.brightness_edges,
                )
                out["psi"] = {
                    "confidence": psi(baseline.confidence_fractions, conf_counts.tolist()),
                    "brightness": psi(baseline.brightness_fractions, light_counts.tolist()),
                }
        return out
