"""TrackingService without a server: baseline adoption and the gauges a Grafana panel reads."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from gateway.tracking import TrackingOptions, TrackingService

BASELINE = json.dumps(
    {
        "images": 10,
        "predicted_ratio": {"cat": 0.5, "dog": 0.5},
        "confidence": {"edges": [0.5, 0.75, 1.0], "fractions": [0.5, 0.5], "mean": 0.8},
        "brightness": {"edges": [0.0, 128.0, 255.0], "fractions": [0.5, 0.5], "mean": 127.0},
    }
)


def _service(tmp_path: Path) -> tuple[TrackingService, CollectorRegistry]:
    registry = CollectorRegistry()
    options = TrackingOptions(
        db_path=tmp_path / "p.db",
        quality_window="1h",
        snapshot_path=tmp_path / "stats.json",
        refresh_s=1,
        snapshot_interval_s=1,
        retention_max_age_s=None,
        retention_max_rows=None,
        retention_interval_s=1,
        cache_ttl_s=60,
        cache_max_entries=10,
        drift_window=100,
    )
    return TrackingService(options, registry, class_names=()), registry


def test_baseline_and_live_drift_gauges(tmp_path: Path) -> None:
    service, registry = _service(tmp_path)
    service.follow_model(("cat", "dog"), {"drift_baseline": BASELINE})
    white = np.full((8, 8, 3), 255, dtype=np.uint8)
    for i in range(4):
        light = service.observe_input(white, 640, 480)
        body = {
            "predicted_class": "cat",
            "confidence": 0.55,
            "processing_time_ms": 3.0,
            "request_id": f"r{i}",
            "model_version": "1",
        }
        asyncio.run(service.record(body, sha256="0" * 64, size=100, light=light))
    # The rows may still be queued for their group commit: feedback commits them first.
    assert asyncio.run(service.add_feedback("r0", "cat"))
    assert asyncio.run(service.add_feedback("r1", "dog"))
    service.refresh_gauges()
    text = generate_latest(registry).decode()
    assert 'drift_class_ratio{predicted_class="cat",source="baseline"} 0.5' in text
    assert 'drift_class_ratio{predicted_class="cat",source="live"} 1.0' in text
    assert 'drift_mean_confidence{source="live"} 0.55' in text
    assert 'drift_mean_brightness{source="live"} 255.0' in text
    psi_lines = [line for line in text.splitlines() if line.startswith("drift_psi{")]
    assert len(psi_lines) == 2 and all(float(line.split()[-1]) > 0.25 for line in psi_lines)
    assert "live_accuracy 0.5" in text and "live_labelled_samples 2.0" in text
    asyncio.run(service.stop())
    assert json.loads((tmp_path / "stats.json").read_text())["counts"]["predictions"] == 4


def test_new_model_without_baseline_clears_the_reference(tmp_path: Path) -> None:
    service, registry = _service(tmp_path)
    service.follow_model(("cat", "dog"), {"drift_baseline": BASELINE})
    service.follow_model(("cat", "dog"), {})
    service.refresh_gauges()
    text = generate_latest(registry).decode()
    assert 'source="baseline"' not in text.split("drift_class_ratio", 1)[-1].split("# HELP", 1)[0]
    assert service.drift.baseline is None
