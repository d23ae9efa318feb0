"""Prometheus metrics. The first four names are the original design's; dashboards depend on them.

Each app gets its own registry, so several apps (tests) never clash on global state.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
_CONFIDENCE_BUCKETS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0)
_BYTES_BUCKETS = (10e3, 50e3, 100e3, 250e3, 500e3, 1e6, 2e6, 5e6, 10e6, 20e6)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "prediction_requests", "Predictions served, by predicted class", ["predicted_class"], registry=r
        )
        self.latency = Histogram(
            "prediction_latency_seconds",
            "End-to-end latency of a prediction request",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.health_checks = Counter("health_check_requests", "Health check requests", registry=r)
        self.errors = Counter(
            "prediction_errors", "Failed predictions, by error type", ["error_type"], registry=r
        )
        self.stage = Histogram(
            "stage_duration_seconds",
            "Time per request stage (decode, infer, total)",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("prediction_requests_in_flight", "Predictions being processed now", registry=r)
        self.confidence = Histogram(
            "prediction_confidence",
            "Confidence of served predictions",
            buckets=_CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.input_bytes = Histogram(
            "prediction_input_bytes", "Size of uploaded images in bytes", buckets=_BYTES_BUCKETS, registry=r
        )
        self.model_info = Gauge(
            "model_info",
            "The model being served (value 1 for the current version)",
            ["model_name", "model_version"],
            registry=r,
        )

    def set_model(self, name: str, version: str) -> None:
        self.model_info.clear()
        self.model_info.labels(model_name=name, model_version=version).set(1)
