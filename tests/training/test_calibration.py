"""Calibration figures and the uncertain-threshold choice: validation picks it, test only reports it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.calibration import calibrate, choose_threshold, expected_calibration_error, plot_reliability


def _probs(confidence: list[float], predicted: list[int]) -> np.ndarray:
    conf = np.array(confidence)
    probs = np.stack([1 - conf, conf], axis=1)
    return np.where(np.array(predicted)[:, None] == 1, probs, probs[:, ::-1])


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_overconfident() -> None:
    # 10 predictions at 0.8 confidence, 8 right: perfectly calibrated.
    probs = _probs([0.8] * 10, [1] * 10)
    labels = np.array([1] * 8 + [0] * 2)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0)
    # Same confidence, half right: off by 0.3.
    assert expected_calibration_error(probs, np.array([1] * 5 + [0] * 5)) == pytest.approx(0.3)


def test_threshold_covers_the_low_confidence_band_that_is_mostly_wrong() -> None:
    # Bands of two (tenths, at least two each): 0/2 and 1/2 right below 0.6, all right from 0.62 up.
    confidence = [0.51, 0.53, 0.55, 0.58, 0.62, 0.7, 0.8, 0.9, 0.95, 0.99]
    probs = _probs(confidence, [1] * 10)
    labels = np.array([0, 0, 1, 0] + [1] * 6)
    threshold = choose_threshold(probs, labels, target_accuracy=0.7)
    assert 0.58 < threshold < 0.62
    # Everything right: nothing needs a flag (0.5 for two classes flags nothing).
    assert choose_threshold(probs, np.ones(10, dtype=int), 0.7) == 0.5


def test_calibrate_reports_the_validation_threshold_on_the_test_split() -> None:
    val = _probs([0.51, 0.55, 0.9, 0.95], [1, 1, 1, 1])
    val_labels = np.array([0, 0, 1, 1])
    test = _probs([0.52, 0.6, 0.97, 0.99], [1, 1, 1, 1])
    test_labels = np.array([1, 0, 1, 1])
    result = calibrate(val, val_labels, test, test_labels, target_accuracy=0.7)
    assert 0.55 < result.threshold < 0.9
    assert result.test_flagged_fraction == pytest.approx(0.5)  # 0.52 and 0.6 fall below it
    assert result.test_accuracy_unflagged == pytest.approx(1.0)
    assert result.test_accuracy_flagged == pytest.approx(0.5)
    assert result.test_accuracy == pytest.approx(0.75)


def test_reliability_plot_is_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 200)
    probs = _probs(conf.tolist(), [1] * 200)
    labels = (rng.uniform(size=200) < conf).astype(int)
    path = plot_reliability(probs, labels, tmp_path / "r.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
