"""The one transforms module: training augmentation, the eval path and batch mixing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from imaging import load_for_model
from training.manifest import cache_path, load_manifest
from training.transforms import IMAGE_SIZE, EvalTransform, TrainTransform, mix_batch

NO_AUGMENT: dict[str, Any] = {
    "hflip_prob": 0.0,
    "rotation_degrees": 0.0,
    "crop_scale": (1.0, 1.0),
    "brightness": 0.0,
    "contrast": 0.0,
    "saturation": 0.0,
    "noise_std": 0.0,
}


def _image(size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_train_transform_returns_uint8_hwc_of_the_configured_size() -> None:
    torch.manual_seed(0)
    out = TrainTransform(image_size=32)(_image(48))
    assert out.shape == (32, 32, 3) and out.dtype == torch.uint8


def test_no_augmentation_is_the_identity() -> None:
    image = _image()
    assert np.array_equal(TrainTransform(image_size=32, **NO_AUGMENT)(image).numpy(), image)


def test_flip_actually_flips_horizontally() -> None:
    image = _image()
    out = TrainTransform(image_size=32, **{**NO_AUGMENT, "hflip_prob": 1.0})(image).numpy()
    assert np.array_equal(out, image[:, ::-1, :])


@pytest.mark.parametrize(
    "change",
    [
        {"rotation_degrees": 30.0},
        {"brightness": 0.5},
        {"contrast": 0.5},
        {"noise_std": 0.05},
        {"crop_scale": (0.3, 0.5)},
    ],
)
def test_each_augmentation_changes_the_image(change: dict[str, Any]) -> None:
    # A random draw can be a no-op (a tiny angle under nearest interpolation); five cannot all be.
    image = _image()
    transform = TrainTransform(image_size=32, **{**NO_AUGMENT, **change})
    torch.manual_seed(0)
    outs = [transform(image).numpy() for _ in range(5)]
    assert all(out.shape == image.shape and out.dtype == np.uint8 for out in outs)
    assert any(not np.array_equal(out, image) for out in outs)


def test_noise_is_zero_mean_and_of_the_configured_strength() -> None:
    torch.manual_seed(0)
    image = np.full((64, 64, 3), 128, dtype=np.uint8)
    out = TrainTransform(image_size=64, **{**NO_AUGMENT, "noise_std": 0.05})(image).numpy().astype(float)
    assert abs(out.mean() - 128) < 1.0
    assert out.std() == pytest.approx(0.05 * 255, rel=0.1)


def test_augmentation_is_reproducible_under_a_seed() -> None:
    transform = TrainTransform(image_size=32)
    torch.manual_seed(7)
    first = transform(_image())
    torch.manual_seed(7)
    assert torch.equal(first, transform(_image()))


def test_eval_transform_is_the_serving_decode(photo: Any) -> None:
    data = photo(size=(300, 200), seed=3)
    assert EvalTransform().image_size == IMAGE_SIZE == 224
    assert np.array_equal(EvalTransform(image_size=64)(data), load_for_model(data, 64))


def test_validation_inputs_equal_the_eval_transform_of_the_source_file(prepared_data: Any) -> None:
    # What training validates on (the preprocess cache) is exactly what serving computes from bytes.
    manifest = load_manifest(prepared_data.manifest).head(5)
    for row in manifest.itertuples(index=False):
        cached = np.load(cache_path(prepared_data.cache_dir, prepared_data.image_size, str(row.sha256)))
        served = EvalTransform(image_size=prepared_data.image_size)(Path(str(row.path)).read_bytes())
        assert np.array_equal(cached, served)


def test_mixup_blends_uint8_batches_with_a_beta_weight() -> None:
    images = torch.from_numpy(np.stack([_image(8, s) for s in range(4)]))
    labels = torch.tensor([0, 1, 0, 1])
    mixed = mix_batch(images, labels, mixup_alpha=0.4, generator=np.random.default_rng(0))
    assert 0.0 < mixed.lam < 1.0 and mixed.images.dtype == torch.uint8
    expected = (images.float() * mixed.lam + images.roll(1, 0).float() * (1 - mixed.lam)).round()
    assert torch.equal(mixed.images, expected.to(torch.uint8))
    assert torch.equal(mixed.labels_b, labels.roll(1, 0))


def test_cutmix_pastes_a_box_and_weights_labels_by_its_area() -> None:
    images = torch.zeros((2, 16, 16, 3), dtype=torch.uint8)
    images[1] = 255
    mixed = mix_batch(images, torch.tensor([0, 1]), cutmix_alpha=1.0, generator=np.random.default_rng(3))
    pasted = (mixed.images[0, :, :, 0] == 255).float().mean().item()
    assert mixed.lam == pytest.approx(1.0 - pasted)
    assert 0.0 < pasted < 1.0


def test_mixing_disabled_is_the_identity() -> None:
    images = torch.from_numpy(np.stack([_image(8, s) for s in range(3)]))
    labels = torch.tensor([0, 1, 1])
    mixed = mix_batch(images, labels, generator=np.random.default_rng(0))
    assert mixed.images is images and mixed.lam == 1.0
