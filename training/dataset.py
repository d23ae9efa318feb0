"""The training data as PyTorch sees it: manifest rows → cached ``uint8 [S,S,3]`` arrays.

The preprocess step (``training.data preprocess``) has already decoded and resized every photo
with ``imaging.load_for_model``, so a sample here is one ``np.load``; batches stay uint8 NHWC
and the model normalises (see ``training.transforms``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from imaging import ImageError, load_for_model
from training.ingest import INGEST_LIMITS
from training.manifest import ManifestError, cache_path, load_manifest
from training.transforms import CLASS_NAMES

# pets-dev style file names carry their source in front: `chkt_cat.12.jpg`, `rvp_dog.3.jpg`.
_SOURCE_TAG = re.compile(r"^([A-Za-z]+)_")


class DataError(RuntimeError):
    """The prepared data is missing or inconsistent; the message says which command fixes it."""


@dataclass(frozen=True)
class Sample:
    sha256: str
    label: int  # index into CLASS_NAMES
    path: str
    source: str  # file-name tag (e.g. `chkt`), or "" when the name carries none


def source_tag(path: str) -> str:
    """The tag before the first underscore of the file name, unless it is just the class name."""
    match = _SOURCE_TAG.match(Path(path).name)
    if not match or match.group(1).lower() in CLASS_NAMES:
        return ""
    return match.group(1).lower()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_split(manifest_path: Path, split: str) -> list[Sample]:
    """The manifest rows of one split (``train``/``val``/``test``) in manifest order."""
    if not Path(manifest_path).is_file():
        raise DataError(
            f"manifest not found: {manifest_path}. Run `make ingest` (python -m training.data ingest)."
        )
    try:
        manifest = load_manifest(Path(manifest_path))
    except ManifestError as exc:
        raise DataError(str(exc)) from exc
    rows = manifest[manifest["split"] == split]
    return [
        Sample(str(row.sha256), CLASS_NAMES.index(str(row.label)), str(row.path), source_tag(str(row.path)))
        for row in rows.itertuples(index=False)
    ]


def check_cache(samples: Sequence[Sample], cache_dir: Path, image_size: int) -> None:
    """Fail before training starts, not mid-epoch, when preprocessing has not covered the manifest."""
    missing = [s for s in samples if not cache_path(cache_dir, image_size, s.sha256).is_file()]
    if missing:
        example = cache_path(cache_dir, image_size, missing[0].sha256)
        raise DataError(
            f"{len(missing)} of {len(samples)} images have no preprocessed cache at size {image_size} "
            f"(e.g. {example}). Run `make preprocess` (python -m training.data preprocess "
            f"--image-size {image_size}) first."
        )


class CachedImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """``(uint8 [S,S,3] tensor, label index)`` from the preprocess cache, optionally augmented."""

    def __init__(
        self,
        samples: Sequence[Sample],
        cache_dir: Path,
        image_size: int,
        transform: Callable[[np.ndarray], torch.Tensor] | None = None,
    ) -> None:
        check_cache(samples, cache_dir, image_size)
        self.samples = list(samples)
        self.cache_dir = Path(cache_dir)
        self.image_size = image_size
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        image = np.load(cache_path(self.cache_dir, self.image_size, sample.sha256))
        if image.shape != (self.image_size, self.image_size, 3) or image.dtype != np.uint8:
            raise DataError(
                f"cache file for {sample.path or sample.sha256} holds {image.dtype}{list(image.shape)}, "
                f"expected uint8[{self.image_size}, {self.image_size}, 3]; re-run `make preprocess`"
            )
        if self.transform is not None:
            return self.transform(image), sample.label
        return torch.from_numpy(image), sample.label

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)


class EvalImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """Evaluation images: the preprocess cache when it exists, else the source file decoded the same way.

    The fallback lets evaluation compare a champion trained at another image size without
    preprocessing the whole manifest again; both paths are ``imaging.load_for_model``.
    """

    def __init__(self, samples: Sequence[Sample], cache_dir: Path, image_size: int) -> None:
        self.samples = list(samples)
        self.cache_dir = Path(cache_dir)
        self.image_size = image_size
        unreadable = [
            s.path
            for s in self.samples
            if not cache_path(cache_dir, image_size, s.sha256).is_file() and not Path(s.path).is_file()
        ]
        if unreadable:
            raise DataError(
                f"{len(unreadable)} images have neither a {image_size}px cache entry nor a readable source "
                f"file (e.g. {unreadable[0]}). Run `make preprocess` from the project root."
            )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        cached = cache_path(self.cache_dir, self.image_size, sample.sha256)
        if cached.is_file():
            return torch.from_numpy(np.load(cached)), sample.label
        try:
            image = load_for_model(Path(sample.path).read_bytes(), self.image_size, limits=INGEST_LIMITS)
        except ImageError as exc:
            raise DataError(f"{sample.path}: {exc.detail}") from exc
        return torch.from_numpy(image), sample.label
