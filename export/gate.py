"""Promotion gate: a model reaches the repository only if it is good enough and no worse than the served one.

Test metrics come from running the exported ONNX file on the manifest's test split from the
preprocess cache — the gate measures exactly what will be served. The served version's ONNX file
is measured again on the same test images (at its own input size), so a retrain on new data is
compared like for like, never with a figure the served model earned on another data set.
Without a cached test split it falls back to the MLflow run's ``test_accuracy`` and the served
version's recorded one, and says that these may come from different images; with neither it
refuses unless forced.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.model import INPUT_NAME
from export.check_images import DataLocation, LabelledImages, MissingImagesError, same_images_at
from export.metadata import read_onnx_metadata
from export.onnx_export import session

EVAL_BATCH = 64


class GateRefusedError(RuntimeError):
    """The model did not pass the promotion gate (use --force to override)."""


@dataclass(frozen=True)
class Metrics:
    accuracy: float
    f1_macro: float
    n: int
    source: str  # onnx-test-split | mlflow-run

    def as_dict(self) -> dict[str, float]:
        return {"test_accuracy": self.accuracy, "test_f1_macro": self.f1_macro, "test_images": float(self.n)}


def predict(onnx_path: Path | bytes, images: np.ndarray, *, batch: int = EVAL_BATCH) -> np.ndarray:
    """Probabilities for every image, in batches."""
    sess = session(onnx_path)
    outs = [sess.run(None, {INPUT_NAME: images[i : i + batch]})[0] for i in range(0, len(images), batch)]
    return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)


def f1_macro(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> float:
    scores = []
    for c in range(num_classes):
        tp = int(((predicted == c) & (labels == c)).sum())
        fp = int(((predicted == c) & (labels != c)).sum())
        fn = int(((predicted != c) & (labels == c)).sum())
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def measure(onnx_path: Path | bytes, data: LabelledImages, num_classes: int = 2) -> Metrics:
    predicted = predict(onnx_path, data.images).argmax(1)
    accuracy = float((predicted == data.labels).mean())
    return Metrics(accuracy, f1_macro(data.labels, predicted, num_classes), len(data), "onnx-test-split")


@dataclass(frozen=True)
class Served:
    """The served version as the gate compares against it."""

    version: int
    accuracy: float | None  # None: it could not be measured (``basis`` says why)
    basis: str  # how ``accuracy`` was obtained, quoted in the gate's output


def remeasure_served(
    onnx_path: Path, version: int, test: LabelledImages, location: DataLocation, num_classes: int = 2
) -> Served:
    """The served version's ONNX file run now on the candidate's test images, at its own input size."""
    try:
        size = int(read_onnx_metadata(onnx_path).get("image_size", "0"))
        images = same_images_at(test, size or test.image_size, location)
        accuracy = measure(onnx_path, images, num_classes).accuracy
    except (OSError, ValueError, MissingImagesError) as exc:
        return Served(version, None, f"it could not be measured on the same test images: {exc}")
    at = f", it at its own {size}px" if size and size != test.image_size else ""
    return Served(version, accuracy, f"both measured now on the same {len(test)} test images{at}")


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: tuple[str, ...]
    metrics: Metrics | None

    def summary(self) -> str:
        return "; ".join(self.reasons)


def decide(metrics: Metrics | None, *, min_accuracy: float, served: Served | None) -> GateDecision:
    """Pure decision, so every branch is testable without a model."""
    if metrics is None:
        return GateDecision(
            False,
            (
                "no test metrics: no cached test split (run `make ingest preprocess`) and no MLflow "
                "test_accuracy on the run (run `make evaluate`)",
            ),
            None,
        )
    reasons: list[str] = []
    passed = True
    if metrics.accuracy < min_accuracy:
        passed = False
        reasons.append(f"test accuracy {metrics.accuracy:.4f} is below the floor {min_accuracy:.4f}")
    else:
        reasons.append(f"test accuracy {metrics.accuracy:.4f} >= floor {min_accuracy:.4f}")
    if served is not None:
        if served.accuracy is None:
            # No like-for-like figure: refusing is safer than comparing with another data set's.
            passed = False
            reasons.append(f"cannot compare with served version {served.version}: {served.basis}")
        elif metrics.accuracy < served.accuracy:
            passed = False
            reasons.append(
                f"test accuracy {metrics.accuracy:.4f} is below the served version {served.version}'s "
                f"{served.accuracy:.4f} ({served.basis})"
            )
        else:
            reasons.append(
                f"not worse than served version {served.version} ({served.accuracy:.4f}; {served.basis})"
            )
    return GateDecision(passed, tuple(reasons), metrics)


def mlflow_metric(run_id: str | None, key: str) -> float | None:
    """One metric of the model's MLflow run, or None (no run, no metric, no tracking store)."""
    if not run_id:
        return None
    from mlflow.exceptions import MlflowException

    from export.source import mlflow_client

    try:
        value = mlflow_client().get_run(run_id).data.metrics.get(key)
    except MlflowException:
        return None
    return None if value is None else float(value)


def mlflow_metrics(run_id: str | None) -> Metrics | None:
    """The run's logged test metrics (fallback when no cached test split exists)."""
    if not run_id:
        return None
    from mlflow.exceptions import MlflowException

    from export.source import mlflow_client

    try:
        run = mlflow_client().get_run(run_id)
    except MlflowException:
        return None
    logged = run.data.metrics
    if "test_accuracy" not in logged:
        return None
    return Metrics(
        float(logged["test_accuracy"]), float(logged.get("test_f1_macro", float("nan"))), 0, "mlflow-run"
    )
