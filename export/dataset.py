"""Images for the export's checks: a manifest split from the preprocess cache, or synthetic stand-ins.

Everything here is ``uint8 [N, S, S, 3]`` exactly as the server receives it, so parity, the gate,
calibration and baseline statistics measure the served input, not a re-implementation of it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.contract import DEFAULT_CACHE, DEFAULT_MANIFEST
from imaging import load_for_model
from training.data import cache_path, load_manifest
from training.transforms import CLASS_NAMES


@dataclass(frozen=True)
class LabelledImages:
    images: np.ndarray  # uint8 [N, S, S, 3]
    labels: np.ndarray  # int64 [N], index into class_names
    source: str  # where they came from, for messages
    original_sizes: np.ndarray | None = None  # int [N, 2] (width, height) before resizing, when known

    def __len__(self) -> int:
        return len(self.images)

    def head(self, n: int) -> LabelledImages:
        sizes = None if self.original_sizes is None else self.original_sizes[:n]
        return LabelledImages(self.images[:n], self.labels[:n], self.source, sizes)


@dataclass(frozen=True, kw_only=True)
class DataLocation:
    # None: no local data for this model (the bundled model): parity runs on synthetic stand-ins
    # and the gate reads the test metrics recorded with the model in MLflow.
    manifest: Path | None = DEFAULT_MANIFEST
    cache_dir: Path = DEFAULT_CACHE


def _manifest_rows(manifest: Path) -> list[dict[str, str]]:
    frame = load_manifest(manifest)  # validates columns, labels and splits
    return [{k: str(v) for k, v in row.items()} for row in frame.to_dict("records")]


def load_split(
    split: str,
    image_size: int,
    *,
    location: DataLocation | None = None,
    class_names: tuple[str, ...] = CLASS_NAMES,
    limit: int | None = None,
) -> LabelledImages | None:
    """The cached images of one manifest split; None when there is no manifest or no cached image."""
    loc = location or DataLocation()
    if loc.manifest is None or not loc.manifest.is_file():
        return None
    rows = [r for r in _manifest_rows(loc.manifest) if r.get("split") == split]
    images: list[np.ndarray] = []
    labels: list[int] = []
    sizes: list[tuple[int, int]] = []
    for row in rows:
        if limit is not None and len(images) >= limit:
            break
        path = cache_path(loc.cache_dir, image_size, row["sha256"])
        if not path.is_file() or row["label"] not in class_names:
            continue
        array = np.load(path)
        if array.shape != (image_size, image_size, 3) or array.dtype != np.uint8:
            continue
        images.append(array)
        labels.append(class_names.index(row["label"]))
        sizes.append((_int(row.get("width")), _int(row.get("height"))))
    if not images:
        return None
    return LabelledImages(
        np.stack(images),
        np.asarray(labels, dtype=np.int64),
        f"{split} split of {loc.manifest} (cache {image_size})",
        np.asarray(sizes, dtype=np.int64),
    )


def _int(value: object) -> int:
    try:
        return int(float(str(value)))
    except ValueError:
        return 0


def synthetic_images(n: int, image_size: int, *, seed: int = 1234) -> LabelledImages:
    """Balanced, deterministic synthetic photos (training.synthetic) through the served decode path."""
    from training.synthetic import make_image

    images: list[np.ndarray] = []
    labels: list[int] = []
    for i in range(n):
        label = CLASS_NAMES[i % len(CLASS_NAMES)]
        item = make_image(label, i // len(CLASS_NAMES), seed=seed)
        buffer = io.BytesIO()
        item.image.save(buffer, format=item.format)
        images.append(load_for_model(buffer.getvalue(), image_size))
        labels.append(CLASS_NAMES.index(label))
    return LabelledImages(np.stack(images), np.asarray(labels, dtype=np.int64), f"synthetic (seed {seed})")


def parity_images(image_size: int, n: int, location: DataLocation | None = None) -> LabelledImages:
    """At least ``n`` images: test then validation split from the cache, topped up with synthetic ones."""
    found: list[LabelledImages] = []
    for split in ("test", "val"):
        part = load_split(split, image_size, location=location, limit=n)
        if part is not None:
            found.append(part)
        if sum(len(p) for p in found) >= n:
            break
    have = sum(len(p) for p in found)
    if have < n:
        found.append(synthetic_images(n - have, image_size))
    images = np.concatenate([p.images for p in found])[:n]
    labels = np.concatenate([p.labels for p in found])[:n]
    return LabelledImages(images, labels, " + ".join(p.source for p in found))
