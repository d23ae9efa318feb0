"""Parity gate: ORT vs PyTorch at batch sizes 1, 7, 32 on synthetic photos."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.check_images import synthetic_images
from export.onnx_export import export_onnx
from export.parity import BATCH_SIZES, ParityError, check_parity
from tests.export.export_helpers import IMAGE_SIZE, Models, untrained_model


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory, models: Models) -> Path:
    return export_onnx(models.trained, IMAGE_SIZE, tmp_path_factory.mktemp("parity") / "model.onnx")


def test_parity_on_synthetic_photos(models: Models, onnx_path: Path) -> None:
    images = synthetic_images(64, IMAGE_SIZE).images
    report = check_parity(models.trained, onnx_path, images)
    assert report.images == 64 and report.batch_sizes == BATCH_SIZES == (1, 7, 32)
    assert report.max_abs_diff <= 1e-4 and report.argmax_mismatches == 0


def test_a_different_model_fails_parity(onnx_path: Path) -> None:
    images = synthetic_images(64, IMAGE_SIZE).images
    with pytest.raises(ParityError, match="max"):
        check_parity(untrained_model(7), onnx_path, images)


def test_too_few_images_is_refused(models: Models, onnx_path: Path) -> None:
    with pytest.raises(ParityError, match="at least 64"):
        check_parity(models.trained, onnx_path, synthetic_images(8, IMAGE_SIZE).images)
