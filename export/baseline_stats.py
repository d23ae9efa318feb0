"""Reference input/output statistics saved beside each model version for drift monitoring.

``<version>/baseline_stats.json`` holds, for the validation split as the served model sees it:
true and predicted class ratios, the histogram of the top-class confidence, the histogram of mean
image brightness (Rec. 601 luma of the resized input, 0–255) and the original image size
statistics. Histograms store ``edges`` (len bins+1), ``counts`` and ``fractions``, so a monitor
can bin live traffic with the same edges and compare distributions (PSI, KL, χ²).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from contract.model import DRIFT_BASELINE_PARAMETER
from export.check_images import LabelledImages
from imaging import brightness

CONFIDENCE_BINS = 10
BRIGHTNESS_BINS = 16


def _histogram(values: np.ndarray, lo: float, hi: float, bins: int) -> dict[str, Any]:
    counts, edges = np.histogram(np.clip(values, lo, hi), bins=bins, range=(lo, hi))
    total = max(int(counts.sum()), 1)
    return {
        "edges": [round(float(e), 6) for e in edges],
        "counts": [int(c) for c in counts],
        "fractions": [round(float(c) / total, 6) for c in counts],
        "mean": float(values.mean()) if len(values) else None,
        "std": float(values.std()) if len(values) else None,
    }


def _ratio(indices: np.ndarray, class_names: tuple[str, ...]) -> dict[str, float]:
    n = max(len(indices), 1)
    return {name: round(float((indices == i).sum()) / n, 6) for i, name in enumerate(class_names)}


def compute(data: LabelledImages, probabilities: np.ndarray, class_names: tuple[str, ...]) -> dict[str, Any]:
    if len(data) == 0 or len(probabilities) != len(data):
        raise ValueError(
            f"baseline needs matching images and predictions, got {len(data)}/{len(probabilities)}"
        )
    confidence = probabilities.max(axis=1)
    stats: dict[str, Any] = {
        "source": data.source,
        "images": len(data),
        "class_names": list(class_names),
        "label_ratio": _ratio(data.labels, class_names),
        "predicted_ratio": _ratio(probabilities.argmax(axis=1), class_names),
        "confidence": _histogram(confidence, 1.0 / len(class_names), 1.0, CONFIDENCE_BINS),
        "brightness": _histogram(brightness(data.images), 0.0, 255.0, BRIGHTNESS_BINS),
        "input_size": None,
    }
    sizes = data.original_sizes
    if sizes is not None and len(sizes) and (sizes > 0).all():
        stats["input_size"] = {
            axis: {
                "min": int(col.min()),
                "median": float(np.median(col)),
                "mean": float(col.mean()),
                "max": int(col.max()),
            }
            for axis, col in (("width", sizes[:, 0]), ("height", sizes[:, 1]))
        }
    return stats


def as_parameter(stats: dict[str, Any]) -> dict[str, str]:
    """The part of the baseline a live monitor compares against, as a compact config parameter."""
    keep = {
        "images": stats["images"],
        "predicted_ratio": stats["predicted_ratio"],
        "confidence": {k: stats["confidence"][k] for k in ("edges", "fractions", "mean")},
        "brightness": {k: stats["brightness"][k] for k in ("edges", "fractions", "mean")},
    }
    return {DRIFT_BASELINE_PARAMETER: json.dumps(keep, separators=(",", ":"))}


def read(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    stats: dict[str, Any] = json.loads(path.read_text())
    return stats


def write(stats: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(stats, indent=2) + "\n")
    return path
