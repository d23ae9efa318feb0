"""Quality and traffic statistics over a window of the prediction log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CONFIDENCE_EDGES: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(11))  # 0.50 … 1.00


def classification_report(
    true: Sequence[str], predicted: Sequence[str], class_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy plus per-class and macro precision/recall/F1.

    A ratio with nothing to count is ``None`` (JSON null), not 0.0: a class with no labelled samples
    has no recall, a class never predicted has no precision, and a 0.0 would read as "always wrong".
    The macro figures average the classes where the figure exists.
    """
    n = len(true)
    per_class: dict[str, dict[str, Any]] = {}
    for name in class_names:
        tp = sum(1 for t, p in zip(true, predicted, strict=True) if t == name and p == name)
        fp = sum(1 for t, p in zip(true, predicted, strict=True) if t != name and p == name)
        fn = sum(1 for t, p in zip(true, predicted, strict=True) if t == name and p != name)
        precision = tp / (tp + fp) if tp + fp else None
        recall = tp / (tp + fn) if tp + fn else None
        if precision is None or recall is None:
            f1 = None
        else:
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    macro: dict[str, float | None] = {}
    for metric in ("precision", "recall", "f1"):
        values = [per_class[c][metric] for c in class_names if per_class[c][metric] is not None]
        macro[metric] = float(np.mean(values)) if values else None
    correct = sum(1 for t, p in zip(true, predicted, strict=True) if t == p)
    return {"samples": n, "accuracy": correct / n if n else None, "per_class": per_class, "macro": macro}


@dataclass(frozen=True)
class WindowColumns:
    """What the statistics need from a window of the log, and nothing else.

    The gauges are recomputed every TRACKING_REFRESH_S over a window that can hold ~10^6 rows;
    materialising each row as a dict made the gateway's peak memory grow with the log (9.4 MiB of
    dicts at 25,000 rows, measured by `make rss-probe`) and its RSS ratchet up with it. Here:
    per-class counts from the database, latencies and confidences as two float arrays (8 bytes a
    row), and only the labelled rows' (true, predicted) pairs.
    """

    class_counts: Mapping[str, int]
    latency_ms: np.ndarray
    confidence: np.ndarray
    labelled: Sequence[tuple[str, str]]  # (true label, predicted class)

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]]) -> WindowColumns:
        counts: dict[str, int] = {}
        for r in rows:
            counts[str(r["predicted_class"])] = counts.get(str(r["predicted_class"]), 0) + 1
        return cls(
            class_counts=counts,
            latency_ms=np.array([float(r["latency_ms"]) for r in rows], dtype=np.float64),
            confidence=np.array([float(r["confidence"]) for r in rows], dtype=np.float64),
            labelled=[
                (str(r["true_label"]), str(r["predicted_class"])) for r in rows if r["true_label"] is not None
            ],
        )


def compute_stats(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> dict[str, Any]:
    return stats_from_columns(WindowColumns.from_rows(rows), class_names)


def stats_from_columns(window: WindowColumns, class_names: Sequence[str]) -> dict[str, Any]:
    latencies, confidences = window.latency_ms, window.confidence
    total = len(latencies)
    class_counts = {name: int(window.class_counts.get(name, 0)) for name in class_names}
    histogram, _ = np.histogram(confidences, bins=CONFIDENCE_EDGES) if total else (np.zeros(10), None)

    def pct(q: float) -> float | None:
        return float(np.percentile(latencies, q)) if total else None

    return {
        "counts": {"predictions": total, "labelled": len(window.labelled), "by_class": class_counts},
        "class_ratio": {name: (count / total if total else None) for name, count in class_counts.items()},
        "latency_ms": {
            "mean": float(latencies.mean()) if total else None,
            "p50": pct(50),
            "p95": pct(95),
            "p99": pct(99),
        },
        "confidence": {
            "mean": float(confidences.mean()) if total else None,
            "histogram": {
                f"{lo:.2f}-{hi:.2f}": int(c)
                for lo, hi, c in zip(CONFIDENCE_EDGES, CONFIDENCE_EDGES[1:], histogram, strict=False)
            },
        },
        "quality": classification_report(
            [t for t, _ in window.labelled], [p for _, p in window.labelled], class_names
        ),
    }
