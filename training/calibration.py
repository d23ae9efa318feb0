"""How far a model's confidence can be trusted, and where the gateway's ``uncertain`` flag should start.

    python -m training.calibration --checkpoint models/bundled/model.pt [--manifest data/manifest.csv]

Protocol: the threshold is chosen on the **validation** split only — the lowest confidence above
which the predictions of the validation photos are still at least ``--target-accuracy`` right
(default 70 %) — and then *reported* on the test split: expected calibration error (ECE), the
fraction of test photos that would be flagged uncertain, and the accuracy of the rest. Choosing
it on the test split would flatter exactly the figures it is judged by.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from contract.paths import CACHE_DIR, EVALUATION_DIR, MANIFEST
from training.checkpoint import load_checkpoint
from training.dataset import DataError, EvalImageDataset, load_split
from training.models import PetClassifier

DEFAULT_BINS = 15
DEFAULT_TARGET_ACCURACY = 0.70


@dataclass(frozen=True)
class Calibration:
    threshold: float  # confidence below which a prediction is flagged uncertain (from val)
    target_accuracy: float
    val_ece: float
    test_ece: float
    test_accuracy: float
    test_flagged_fraction: float
    test_accuracy_unflagged: float
    test_accuracy_flagged: float | None  # None when no test photo falls below the threshold
    n_val: int
    n_test: int


@torch.no_grad()
def probabilities(model: PetClassifier, dataset: EvalImageDataset, batch_size: int = 128) -> np.ndarray:
    """Softmax probabilities ``[N, C]`` of uint8 images, as the exported graph computes them."""
    model.eval()
    out = [
        torch.softmax(model(images).float(), dim=1).numpy()
        for images, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False)
    ]
    return np.concatenate(out) if out else np.zeros((0, 2), dtype=np.float32)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = DEFAULT_BINS) -> float:
    """ECE over equal-width confidence bins: Σ (bin share) · |accuracy − mean confidence|."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for low, high in itertools.pairwise(edges):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def choose_threshold(probs: np.ndarray, labels: np.ndarray, target_accuracy: float) -> float:
    """The confidence below which predictions are right less often than ``target_accuracy``.

    The validation predictions, sorted by confidence, are cut into equal-count bands (tenths, at
    least two predictions each); the flag covers every band up to the most confident one whose
    accuracy is under the target. A band, not everything below a point: the few confident
    predictions near the top would otherwise be averaged with the unreliable bottom. Returns
    ``1 / classes`` (nothing flagged) when no band is under the target.
    """
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    order = np.argsort(confidence, kind="stable")
    confidence, correct = confidence[order], correct[order]
    size = max(2, len(confidence) // 10)
    starts = list(range(0, len(confidence), size))
    low_bands = [
        i for i, start in enumerate(starts) if correct[start : start + size].mean() < target_accuracy
    ]
    if not low_bands:
        return 1.0 / probs.shape[1]
    end = min(starts[low_bands[-1]] + size, len(confidence))  # first prediction above the band
    if end >= len(confidence):
        return float(np.nextafter(confidence[-1], np.inf))
    # Midway between the band's most confident prediction and the next one.
    return float(round((confidence[end - 1] + confidence[end]) / 2, 4))


def calibrate(
    val_probs: np.ndarray,
    val_labels: np.ndarray,
    test_probs: np.ndarray,
    test_labels: np.ndarray,
    target_accuracy: float = DEFAULT_TARGET_ACCURACY,
    bins: int = DEFAULT_BINS,
) -> Calibration:
    threshold = choose_threshold(val_probs, val_labels, target_accuracy)
    confidence = test_probs.max(axis=1)
    correct = test_probs.argmax(axis=1) == test_labels
    flagged = confidence < threshold
    return Calibration(
        threshold=threshold,
        target_accuracy=target_accuracy,
        val_ece=expected_calibration_error(val_probs, val_labels, bins),
        test_ece=expected_calibration_error(test_probs, test_labels, bins),
        test_accuracy=float(correct.mean()),
        test_flagged_fraction=float(flagged.mean()),
        test_accuracy_unflagged=float(correct[~flagged].mean()) if (~flagged).any() else 0.0,
        test_accuracy_flagged=float(correct[flagged].mean()) if flagged.any() else None,
        n_val=len(val_labels),
        n_test=len(test_labels),
    )


def plot_reliability(probs: np.ndarray, labels: np.ndarray, path: Path, title: str, bins: int = 10) -> Path:
    """Reliability diagram: accuracy per confidence bin against the diagonal of perfect calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.5, 1.0, bins + 1)  # two classes: confidence is never below 0.5
    centers, accuracy, counts = [], [], []
    for low, high in itertools.pairwise(edges):
        in_bin = (
            (confidence >= low) & (confidence <= high)
            if high == 1.0
            else (confidence >= low) & (confidence < high)
        )
        if in_bin.any():
            centers.append((low + high) / 2)
            accuracy.append(correct[in_bin].mean())
            counts.append(int(in_bin.sum()))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0.5, 1.0], [0.5, 1.0], "--", color="grey", label="perfectly calibrated")
    ax.bar(centers, accuracy, width=(edges[1] - edges[0]) * 0.9, alpha=0.7, label="accuracy in bin")
    for x, y, n in zip(centers, accuracy, counts, strict=True):
        ax.annotate(str(n), (x, y), ha="center", va="bottom", fontsize=7)
    ax.set_xlim(0.5, 1.0)
    ax.set_ylim(0.0, 1.05)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def measure(
    checkpoint: Path, manifest: Path, cache_dir: Path, target_accuracy: float, plot: Path | None
) -> tuple[Calibration, dict[str, Any]]:
    model, meta = load_checkpoint(checkpoint)
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in ("val", "test"):
        samples = load_split(manifest, split)
        if not samples:
            raise DataError(f"the {split} split of {manifest} is empty")
        dataset = EvalImageDataset(samples, cache_dir, meta.image_size)
        labels = np.array([s.label for s in samples], dtype=np.int64)
        splits[split] = (probabilities(model, dataset), labels)
    result = calibrate(*splits["val"], *splits["test"], target_accuracy=target_accuracy)
    if plot is not None:
        plot_reliability(*splits["test"], plot, f"test split: ECE {result.test_ece:.3f}, n={result.n_test}")
    return result, {"checkpoint": str(checkpoint), "manifest": str(manifest)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.calibration",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="example: python -m training.calibration --checkpoint models/bundled/model.pt "
        f"--manifest {MANIFEST} --plot {EVALUATION_DIR}/reliability_test.png",
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="checkpoint to measure")
    parser.add_argument("--manifest", type=Path, default=Path(MANIFEST), help="data manifest")
    parser.add_argument("--cache-dir", type=Path, default=Path(CACHE_DIR), help="preprocess cache root")
    parser.add_argument(
        "--target-accuracy",
        type=float,
        default=DEFAULT_TARGET_ACCURACY,
        help="flag predictions in the confidence band whose validation accuracy is below this",
    )
    parser.add_argument("--plot", type=Path, default=None, help="write a reliability diagram (PNG) here")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    try:
        result, _ = measure(args.checkpoint, args.manifest, args.cache_dir, args.target_accuracy, args.plot)
    except (DataError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    body = asdict(result)
    print(json.dumps(body, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(body, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
