"""Manifest → ``data/cache/<S>/<sha256>.npy``: each image decoded and resized once, for fast epochs.

The array is exactly ``imaging.load_for_model(bytes, S)``, the function serving uses, so the
model trains on the pixels it will be served. Idempotent: existing cache files are kept (the
name is the content hash, so an existing file is the right one), and each file appears
atomically (temp file + rename), so an interrupted run never leaves a half-written array.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imaging import DecodeLimits, ImageError, load_for_model
from training.ingest import INGEST_LIMITS
from training.manifest import cache_path, load_manifest
from training.parallel import parallel_map


@dataclass(frozen=True)
class PreprocessResult:
    written: int
    skipped: int
    failures: list[tuple[str, str]]  # (path, why)
    seconds: float

    def summary(self) -> str:
        text = (
            f"preprocess: {self.written} written, {self.skipped} already cached, "
            f"{len(self.failures)} failed ({self.seconds:.1f} s)"
        )
        for path, why in self.failures[:20]:
            text += f"\n  {path}: {why}"
        if len(self.failures) > 20:
            text += f"\n  … and {len(self.failures) - 20} more"
        return text


def _cache_one(task: tuple[str, str, Path, int, DecodeLimits]) -> str | None:
    """Write one cache file; returns why it failed, or None."""
    path, sha256, target, size, limits = task
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return f"cannot read: {exc}"
    if hashlib.sha256(data).hexdigest() != sha256:
        return "content changed since ingest (sha256 differs); re-run ingest"
    try:
        array = load_for_model(data, size, limits=limits)
    except ImageError as exc:
        return f"{exc.kind}: {exc.detail}"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    tmp.replace(target)
    return None


def preprocess(
    manifest_path: Path,
    cache_dir: Path,
    image_size: int,
    *,
    workers: int | None = None,
    limits: DecodeLimits = INGEST_LIMITS,
    progress: bool = True,
) -> PreprocessResult:
    start = time.perf_counter()
    if image_size < 1:
        raise ValueError(f"image size must be ≥ 1, got {image_size}")
    manifest = load_manifest(manifest_path)
    tasks = []
    for row in manifest.itertuples(index=False):
        target = cache_path(cache_dir, image_size, str(row.sha256))
        if not target.is_file():
            tasks.append((str(row.path), str(row.sha256), target, image_size, limits))
    workers = workers if workers is not None else (os.cpu_count() or 1)
    outcomes = list(
        parallel_map(_cache_one, tasks, workers=workers, desc=f"preprocess {image_size}px", progress=progress)
    )
    failures = [(task[0], why) for task, why in zip(tasks, outcomes, strict=True) if why is not None]
    return PreprocessResult(
        written=len(tasks) - len(failures),
        skipped=len(manifest) - len(tasks),
        failures=failures,
        seconds=time.perf_counter() - start,
    )
