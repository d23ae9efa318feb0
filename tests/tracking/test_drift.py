import json

import numpy as np
import pytest

from tracking.drift import Baseline, DriftMonitor, psi

BASELINE = json.dumps(
    {
        "images": 100,
        "predicted_ratio": {"cat": 0.5, "dog": 0.5},
        "confidence": {"edges": [0.5, 0.75, 1.0], "fractions": [0.2, 0.8], "mean": 0.85},
        "brightness": {"edges": [0.0, 128.0, 255.0], "fractions": [0.5, 0.5], "mean": 120.0},
    }
)


def test_psi_is_zero_for_identical_and_grows_with_shift() -> None:
    assert psi([0.5, 0.5], [50, 50]) == pytest.approx(0.0)
    small, large = psi([0.5, 0.5], [60, 40]), psi([0.5, 0.5], [95, 5])
    assert 0 < small < 0.1 < large
    # hand value: (0.6-0.5)ln(0.6/0.5) + (0.4-0.5)ln(0.4/0.5)
    assert small == pytest.approx(0.1 * np.log(1.2) - 0.1 * np.log(0.8))


def test_monitor_reports_live_values_against_the_baseline() -> None:
    monitor = DriftMonitor(window=10)
    monitor.set_baseline(Baseline.from_parameter(BASELINE))
    for _ in range(10):
        monitor.observe("cat", 0.6, 200.0)  # all cats, low confidence, bright: drifted
    snap = monitor.snapshot()
    assert snap["class_ratio"] == {"cat": 1.0, "dog": 0.0}
    assert snap["mean_confidence"] == pytest.approx(0.6)
    assert snap["baseline"]["mean_confidence"] == 0.85
    assert snap["psi"]["confidence"] > 0.25 and snap["psi"]["brightness"] > 0.25


def test_window_is_bounded_and_resets_with_a_new_baseline() -> None:
    monitor = DriftMonitor(window=5)
    for i in range(20):
        monitor.observe("dog", 0.9, float(i))
    assert monitor.snapshot()["samples"] == 5
    monitor.set_baseline(None)
    snap = monitor.snapshot()
    assert snap["samples"] == 0 and snap["baseline"] is None and "psi" not in snap
