"""The synthetic set: reproducible, varied, and not separable by colour statistics."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imaging import decode_image, sniff_format, to_rgb
from training.synthetic import CLASSES, generate_synthetic, make_image


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_generation_is_deterministic(tmp_path: Path) -> None:
    a = generate_synthetic(tmp_path / "a", 12, seed=3, size_range=(48, 96))
    b = generate_synthetic(tmp_path / "b", 12, seed=3, size_range=(48, 96))
    assert _digests(a) == _digests(b)
    assert len(_digests(a)) == 25  # 24 images + the parameters file


def test_other_seed_gives_other_images(tmp_path: Path) -> None:
    a = generate_synthetic(tmp_path / "a", 6, seed=0, size_range=(48, 96))
    b = generate_synthetic(tmp_path / "b", 6, seed=1, size_range=(48, 96))
    images = [{v for k, v in _digests(d).items() if "/" in k} for d in (a, b)]
    assert images[0].isdisjoint(images[1])


def test_growing_keeps_existing_files(tmp_path: Path) -> None:
    small = _digests(generate_synthetic(tmp_path / "s", 5, size_range=(48, 96)))
    grown = _digests(generate_synthetic(tmp_path / "s", 9, size_range=(48, 96)))
    assert len(grown) == 19
    assert all(grown[name] == digest for name, digest in small.items())


def test_folder_matches_the_requested_set_exactly(tmp_path: Path) -> None:
    out = tmp_path / "s"
    generate_synthetic(out, 6, size_range=(48, 96))
    (out / "cat" / "mine.txt").write_text("not generated: left alone")
    shrunk = _digests(generate_synthetic(out, 3, size_range=(48, 96)))
    stems = sorted(Path(name).stem for name in shrunk if "/" in name)
    assert stems == ["cat_00000", "cat_00001", "cat_00002", "dog_00000", "dog_00001", "dog_00002", "mine"]
    other_seed = _digests(generate_synthetic(out, 3, seed=5, size_range=(48, 96)))
    fresh = _digests(generate_synthetic(tmp_path / "fresh", 3, seed=5, size_range=(48, 96)))
    assert {k: v for k, v in other_seed.items() if k != "cat/mine.txt"} == fresh


def test_pool_generation_is_byte_identical(tmp_path: Path) -> None:
    serial = generate_synthetic(tmp_path / "a", 40, seed=2, size_range=(48, 64), workers=1)
    pooled = generate_synthetic(tmp_path / "b", 40, seed=2, size_range=(48, 64), workers=2)
    assert _digests(serial) == _digests(pooled)


def test_layout_formats_modes_and_sizes(synthetic_dir: Path) -> None:
    files = sorted(p for p in synthetic_dir.rglob("*") if p.is_file() and p.parent != synthetic_dir)
    assert {p.parent.name for p in files} == set(CLASSES)
    formats: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    sizes = set()
    for path in files:
        data = path.read_bytes()
        fmt = sniff_format(data)
        assert fmt is not None
        # The extension tells the truth for synthetic files (misnamed files are tested elsewhere).
        assert path.suffix.lstrip(".").upper().replace("JPG", "JPEG") == fmt
        with Image.open(path) as img:
            modes[img.mode] += 1
            sizes.add(img.size)
            assert min(img.size) >= 48 and max(img.size) <= 128
        assert decode_image(data).image.mode == "RGB"  # every file decodes fully
        formats[fmt] += 1
    assert set(formats) == {"JPEG", "PNG", "WEBP", "BMP", "GIF"}
    assert {"RGB", "L", "RGBA", "P"} <= set(modes)
    assert len(sizes) > 40  # sizes vary, not a handful of fixed canvases


def test_unknown_label_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown label"):
        make_image("horse", 0)
    with pytest.raises(ValueError, match="n_per_class"):
        generate_synthetic(tmp_path, 0)


def _mean_rgb_features(n: int) -> tuple[np.ndarray, np.ndarray]:
    feats, labels = [], []
    for y, label in enumerate(CLASSES):
        for i in range(n):
            item = make_image(label, i, seed=7, size_range=(48, 96))
            rgb = np.asarray(to_rgb(item.image), dtype=np.float64)  # as the decoder sees it
            feats.append(rgb.reshape(-1, 3).mean(axis=0))
            labels.append(y)
    return np.array(feats), np.array(labels)


def _lda_accuracy(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """Fisher's linear discriminant: the best linear rule under shared-covariance Gaussians."""
    m0, m1 = x_train[y_train == 0].mean(0), x_train[y_train == 1].mean(0)
    cov = np.cov(np.concatenate([x_train[y_train == 0] - m0, x_train[y_train == 1] - m1]).T)
    w = np.linalg.solve(cov + 1e-6 * np.eye(len(m0)), m1 - m0)
    threshold = w @ (m0 + m1) / 2
    return float(((x_test @ w > threshold).astype(int) == y_test).mean())


def test_class_is_not_predictable_from_mean_colour() -> None:
    x, y = _mean_rgb_features(150)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    half = len(y) // 2
    a, b = order[:half], order[half:]
    # Held-out accuracy both ways: a colour shortcut would show up well above chance.
    accs = [_lda_accuracy(x[a], y[a], x[b], y[b]), _lda_accuracy(x[b], y[b], x[a], y[a])]
    assert max(accs) < 0.62, accs
    # Nor does any single channel (or brightness) split the classes with one threshold.
    for feature in [*x.T, x.mean(axis=1)]:
        best = max(max(((feature > t) == y).mean(), ((feature <= t) == y).mean()) for t in np.unique(feature))
        # The best in-sample threshold over 300 points reaches ~0.56 by chance alone.
        assert best < 0.64, best
