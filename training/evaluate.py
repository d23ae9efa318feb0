"""Evaluate a registered model on the test split and decide whether it becomes the champion.

    python -m training.evaluate [--alias challenger | --checkpoint artifacts/checkpoints/last.pt]

Writes ``metrics.json`` (DVC metrics) and a confusion-matrix PNG, logs ``test_*`` metrics to the
model's MLflow run, and moves alias ``champion`` to the candidate only when it beats the current
champion's accuracy on the *same* test images (both are evaluated now, so a split that grew since
the champion was trained cannot flatter either side), or when there is no champion yet.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from contract.paths import CACHE_DIR, EVALUATION_DIR, MANIFEST
from imaging.cli import ArgumentParser
from training import registry
from training.checkpoint import CheckpointMeta, load_checkpoint
from training.dataset import DataError, EvalImageDataset, Sample, file_sha256, load_split
from training.engine import predict, resolve_device
from training.metrics import classification_metrics, flat_metrics, plot_confusion_matrix
from training.models import PetClassifier


@dataclass
class Candidate:
    model: PetClassifier
    meta: CheckpointMeta
    run_id: str | None
    version: str | None  # registered model version, None when the run was not registered


@dataclass
class Decision:
    promoted: bool
    reason: str


def _load_candidate(client: Any, alias: str, checkpoint: Path | None, workdir: Path) -> Candidate:
    if checkpoint is not None:
        model, meta = load_checkpoint(checkpoint)
        run_id = meta.mlflow_run_id
        found = registry.version_for_run(client, run_id) if run_id else None
        return Candidate(model, meta, run_id, str(found.version) if found else None)
    version = registry.version_by_alias(client, alias)
    if version is None:
        raise DataError(
            f"no version of {registry.REGISTERED_MODEL_NAME!r} has alias @{alias} "
            f"in {registry.tracking_uri()}; run `make train` first"
        )
    local = registry.download_checkpoint(version.run_id, workdir / f"v{version.version}")
    model, meta = load_checkpoint(local)
    return Candidate(model, meta, version.run_id, str(version.version))


def evaluate_model(
    model: PetClassifier, meta: CheckpointMeta, samples: list[Sample], cache_dir: Path, batch_size: int = 128
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Labels, predictions and metrics of ``model`` on ``samples`` at its own image size."""
    device = resolve_device("auto")
    dataset = EvalImageDataset(samples, cache_dir, meta.image_size)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    y_true, y_pred, _ = predict(model.to(device), loader, device, desc="test")
    return y_true, y_pred, classification_metrics(y_true, y_pred, meta.class_names)


def per_source_metrics(
    samples: list[Sample], y_true: np.ndarray, y_pred: np.ndarray, class_names: tuple[str, ...]
) -> dict[str, Any]:
    """Metrics per file-name source tag (pets-dev's chkt_/rvp_/chbtr_/chbte_); empty without tags."""
    tags = np.array([s.source for s in samples])
    out: dict[str, Any] = {}
    for tag in sorted(set(tags) - {""}):
        mask = tags == tag
        m = classification_metrics(y_true[mask], y_pred[mask], class_names)
        out[tag] = {"accuracy": m["accuracy"], "f1_macro": m["f1_macro"], "n": m["n"]}
    return out


def decide_champion(
    client: Any, candidate: Candidate, score: float, champion_score: float | None
) -> Decision:
    """Move @champion to the candidate only on strict improvement (or when there is none)."""
    if candidate.version is None:
        return Decision(False, "the evaluated run has no registered version, so it cannot become champion")
    if champion_score is None:
        registry.set_alias(client, registry.CHAMPION, candidate.version)
        return Decision(True, f"no champion existed; version {candidate.version} is now @champion")
    if score > champion_score:
        registry.set_alias(client, registry.CHAMPION, candidate.version)
        return Decision(
            True,
            f"version {candidate.version} test accuracy {score:.4f} beats the champion's "
            f"{champion_score:.4f}; moved @champion to version {candidate.version}",
        )
    return Decision(
        False,
        f"version {candidate.version} test accuracy {score:.4f} does not beat the champion's "
        f"{champion_score:.4f}; @champion unchanged",
    )


def run(args: argparse.Namespace) -> Decision:
    import mlflow

    client = registry.get_client()
    manifest, cache_dir = Path(args.manifest), Path(args.cache_dir)
    samples = load_split(manifest, "test")
    if not samples:
        raise DataError(f"the test split of {manifest} is empty; ingest more images")

    with tempfile.TemporaryDirectory() as tmp:
        candidate = _load_candidate(client, args.alias, args.checkpoint, Path(tmp))
        meta = candidate.meta
        manifest_sha = file_sha256(manifest)
        if meta.manifest_sha256 not in ("unknown", manifest_sha):
            print(
                f"note: {manifest} changed since this model was trained (its split assignment is stable, "
                "so test images were still unseen in training)",
                flush=True,
            )
        y_true, y_pred, metrics = evaluate_model(candidate.model, meta, samples, cache_dir)
        metrics["per_source"] = per_source_metrics(samples, y_true, y_pred, tuple(meta.class_names))
        who = f"version {candidate.version}" if candidate.version else f"run {candidate.run_id}"
        print(
            f"{registry.REGISTERED_MODEL_NAME} {who} on {metrics['n']} test images: accuracy "
            f"{metrics['accuracy']:.4f}, F1 (macro) {metrics['f1_macro']:.4f}",
            flush=True,
        )
        for tag, m in metrics["per_source"].items():
            print(f"  source {tag:>8}: accuracy {m['accuracy']:.4f} on {m['n']} images", flush=True)

        # The champion is re-evaluated on the same images for a like-for-like comparison.
        champion_score: float | None = None
        champion = registry.version_by_alias(client, registry.CHAMPION)
        if (
            champion is not None
            and candidate.version is not None
            and str(champion.version) == candidate.version
        ):
            decision = Decision(False, f"version {candidate.version} already is @champion")
        else:
            if champion is not None:
                champ_ckpt = registry.download_checkpoint(champion.run_id, Path(tmp) / "champion")
                champ_model, champ_meta = load_checkpoint(champ_ckpt)
                _, _, champ_metrics = evaluate_model(champ_model, champ_meta, samples, cache_dir)
                champion_score = float(champ_metrics["accuracy"])
            decision = decide_champion(client, candidate, float(metrics["accuracy"]), champion_score)

    out = {
        "model": registry.REGISTERED_MODEL_NAME,
        "version": candidate.version,
        "run_id": candidate.run_id,
        "image_size": meta.image_size,
        **{k: v for k, v in metrics.items() if k != "confusion_matrix"},
        "confusion_matrix": metrics["confusion_matrix"],
    }
    metrics_path = Path(args.metrics)
    metrics_path.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    plot_path = plot_confusion_matrix(
        np.array(metrics["confusion_matrix"]),
        meta.class_names,
        Path(args.plots_dir) / "confusion_matrix_test.png",
        f"test ({who}), acc {metrics['accuracy']:.3f}",
    )

    if candidate.run_id:
        with mlflow.start_run(run_id=candidate.run_id):
            mlflow.log_metrics(flat_metrics(metrics, "test"))
            for tag, m in metrics["per_source"].items():
                mlflow.log_metric(f"test_accuracy_source_{tag}", m["accuracy"])
            mlflow.log_artifact(str(plot_path), artifact_path="plots")
            mlflow.log_dict(out, "evaluation/metrics.json")
            mlflow.set_tag("champion_decision", decision.reason)
    print(f"wrote {metrics_path} and {plot_path}", flush=True)
    print(("promoted: " if decision.promoted else "not promoted: ") + decision.reason, flush=True)
    return decision


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m training.evaluate",
        description="Test-split metrics → metrics.json; move @champion only when the candidate is better.",
        epilog="""examples:
  python -m training.evaluate                       # the @challenger from the last training
  python -m training.evaluate --checkpoint artifacts/checkpoints/last.pt --metrics build/metrics.json""",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--alias",
        default=registry.CHALLENGER,
        help="registry alias of the model to evaluate (default challenger)",
    )
    source.add_argument(
        "--checkpoint",
        type=Path,
        help="evaluate this checkpoint (its MLflow run and registered version are found from its metadata)",
    )
    parser.add_argument("--manifest", default=MANIFEST, help=f"data manifest (default {MANIFEST})")
    parser.add_argument("--cache-dir", default=CACHE_DIR, help=f"preprocess cache root (default {CACHE_DIR})")
    parser.add_argument(
        "--metrics", default="metrics.json", help="where to write the metrics (default metrics.json)"
    )
    parser.add_argument(
        "--plots-dir",
        default=EVALUATION_DIR,
        help=f"folder for the confusion-matrix PNG (default {EVALUATION_DIR})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except (DataError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
