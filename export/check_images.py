"""Images for the export's checks: a manifest split from the preprocess cache, or synthetic stand-ins.

Everything here is ``uint8 [N, S, S, 3]`` exactly as the server receives it, so parity, the gate,
calibration and baseline statistics measure the served input, not a re-implementation of it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.paths import PROJECT_CACHE_DIR, PROJECT_MANIFEST
from imaging import ImageError, load_for_model
from training.data import cache_path, load_manifest
from training.transforms import CLASS_NAMES


@dataclass(frozen=True)
class LabelledImages:
    images: np.ndarray  # uint8 [N, S, S, 3]
    labels: np.ndarray  # int64 [N], index into class_names
    source: str  # where they came from, for messages
    original_sizes: np.ndarray | None = None  # int [N, 2] (width, height) before resizing, when known
    sha256: tuple[str, ...] | None = None  # manifest identity of each image, when it came from one

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    def head(self, n: int) -> LabelledImages:
        sizes = None if self.original_sizes is None else self.original_sizes[:n]
        keys = None if self.sha256 is None else self.sha256[:n]
        return LabelledImages(self.images[:n], self.labels[:n], self.source, sizes, keys)


class MissingImagesError(RuntimeError):
    """Images of a split are not available at the size asked for (no cache entry, no source file)."""


@dataclass(frozen=True, kw_only=True)
class DataLocation:
    # None: no local data for this model (the bundled model): parity runs on synthetic stand-ins
    # and the gate reads the test metrics recorded with the model in MLflow.
    manifest: Path | None = PROJECT_MANIFEST
    cache_dir: Path = PROJECT_CACHE_DIR


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
    keys: list[str] = []
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
        keys.append(row["sha256"])
    if not images:
        return None
    return LabelledImages(
        np.stack(images),
        np.asarray(labels, dtype=np.int64),
        f"{split} split of {loc.manifest} (cache {image_size})",
        np.asarray(sizes, dtype=np.int64),
        tuple(keys),
    )


def same_images_at(
    data: LabelledImages, image_size: int, location: DataLocation | None = None
) -> LabelledImages:
    """The very images of ``data`` at another model's ``image_size``, in the same order.

    Each comes from the preprocess cache at that size, else from its source file through
    ``imaging.load_for_model`` (what training.evaluate does for a champion of another size), so
    two models of different input sizes are measured on the same photos.
    """
    if image_size == data.image_size:
        return data
    if data.sha256 is None:
        raise MissingImagesError(f"{data.source}: the images carry no manifest identity to reload them by")
    from training.ingest import INGEST_LIMITS

    loc = location or DataLocation()
    if loc.manifest is None:
        raise MissingImagesError(f"{data.source}: no manifest to reload the images from")
    paths = {row["sha256"]: row.get("path", "") for row in _manifest_rows(loc.manifest)}
    images: list[np.ndarray] = []
    for sha in data.sha256:
        cached = cache_path(loc.cache_dir, image_size, sha)
        if cached.is_file():
            images.append(np.load(cached))
            continue
        source = Path(paths.get(sha) or "")
        if not source.is_file():
            raise MissingImagesError(
                f"image {sha[:12]} has neither a {image_size}px cache entry in {loc.cache_dir} nor a "
                f"readable source file ({source}); run "
                f"`python -m training.data preprocess --image-size {image_size}`"
            )
        try:
            images.append(load_for_model(source.read_bytes(), image_size, limits=INGEST_LIMITS))
        except ImageError as exc:
            raise MissingImagesError(f"{source}: {exc.detail}") from exc
    return LabelledImages(
        np.stack(images),
        data.labels,
        f"{data.source}, reloaded at {image_size}px",
        data.original_sizes,
        data.sha256,
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
