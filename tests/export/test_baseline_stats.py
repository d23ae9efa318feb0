"""Baseline statistics beside each version, for drift monitoring."""

from __future__ import annotations

import json

import numpy as np
import pytest

from export.baseline_stats import brightness, compute
from export.check_images import LabelledImages
from export.pipeline import ExportResult


def test_written_beside_the_model(exported: ExportResult) -> None:
    stats = json.loads((exported.onnx_path.parent / "baseline_stats.json").read_text())
    assert stats["images"] == 64 and "val split" in stats["source"]
    assert stats["label_ratio"] == {"cat": 0.5, "dog": 0.5}
    assert sum(stats["predicted_ratio"].values()) == pytest.approx(1.0)
    for name in ("confidence", "brightness"):
        hist = stats[name]
        assert sum(hist["counts"]) == 64 and len(hist["edges"]) == len(hist["counts"]) + 1
        assert sum(hist["fractions"]) == pytest.approx(1.0, abs=1e-4)
    assert stats["confidence"]["edges"][0] == 0.5 and stats["confidence"]["edges"][-1] == 1.0
    assert stats["input_size"]["height"]["median"] == 36
    assert stats["input_size"]["width"]["min"] == 40 and stats["input_size"]["width"]["max"] == 48


def test_brightness_and_histograms_follow_the_data() -> None:
    images = np.zeros((4, 8, 8, 3), np.uint8)
    images[2:] = 255
    np.testing.assert_allclose(brightness(images), [0, 0, 255, 255])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55]], np.float32)
    stats = compute(LabelledImages(images, np.array([0, 0, 1, 1]), "unit"), probs, ("cat", "dog"))
    assert stats["predicted_ratio"] == {"cat": 0.5, "dog": 0.5}
    assert stats["brightness"]["counts"][0] == 2 and stats["brightness"]["counts"][-1] == 2
    assert stats["confidence"]["mean"] == pytest.approx((0.9 + 0.6 + 0.8 + 0.55) / 4)
    assert stats["input_size"] is None
    with pytest.raises(ValueError, match="matching"):
        compute(LabelledImages(images, np.array([0, 0, 1, 1]), "unit"), probs[:2], ("cat", "dog"))
