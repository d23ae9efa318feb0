"""Parity gate: the ONNX graph must compute what the PyTorch model computes, at several batch sizes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from contract.model import INPUT_NAME
from export.contract import MIN_PARITY_IMAGES
from export.onnx_export import ProbabilityModel, session

BATCH_SIZES: tuple[int, ...] = (1, 7, 32)
MIN_IMAGES = MIN_PARITY_IMAGES
TOLERANCE = 1e-4


class ParityError(RuntimeError):
    """ONNX Runtime and PyTorch disagree beyond the tolerance."""


@dataclass(frozen=True)
class ParityReport:
    images: int
    batch_sizes: tuple[int, ...]
    max_abs_diff: float
    argmax_mismatches: int

    def __str__(self) -> str:
        return (
            f"parity: {self.images} images at batch sizes {list(self.batch_sizes)}, "
            f"max |Δp| = {self.max_abs_diff:.2e}, argmax mismatches = {self.argmax_mismatches}"
        )


def _batches(images: np.ndarray, batch_size: int) -> list[np.ndarray]:
    return [images[i : i + batch_size] for i in range(0, len(images), batch_size)]


def check_parity(
    classifier: nn.Module,
    onnx_path: Path,
    images: np.ndarray,
    *,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    tolerance: float = TOLERANCE,
    min_images: int = MIN_IMAGES,
) -> ParityReport:
    """Compare probabilities batch by batch; raise :class:`ParityError` on any violation."""
    if len(images) < min_images:
        raise ParityError(f"parity needs at least {min_images} images, got {len(images)}")
    reference_model = ProbabilityModel(classifier).eval()
    with torch.inference_mode():
        reference = reference_model(torch.from_numpy(np.ascontiguousarray(images))).numpy()
    sess = session(onnx_path)
    worst = 0.0
    mismatches = 0
    for batch_size in batch_sizes:
        got = np.concatenate([sess.run(None, {INPUT_NAME: b})[0] for b in _batches(images, batch_size)])
        if got.shape != reference.shape:
            raise ParityError(
                f"batch size {batch_size}: ONNX output {got.shape} vs PyTorch {reference.shape}"
            )
        worst = max(worst, float(np.abs(got - reference).max()))
        mismatches += int((got.argmax(1) != reference.argmax(1)).sum())
    report = ParityReport(len(images), tuple(batch_sizes), worst, mismatches)
    if worst > tolerance or mismatches:
        raise ParityError(f"{report} (tolerance {tolerance:g}, no mismatches allowed)")
    return report
