"""The data manifest and the preprocessing cache layout: the contract between ingest and training.

``data/manifest.csv`` columns (docs/ARCHITECTURE.md): ``sha256,label,split,path,format,width,height,bytes``.
``path`` is relative to the working directory when the file lies under it (so the manifest, and
its hash in every checkpoint, does not depend on where the project is checked out), else absolute.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

MANIFEST_COLUMNS: tuple[str, ...] = ("sha256", "label", "split", "path", "format", "width", "height", "bytes")
REJECT_COLUMNS: tuple[str, ...] = ("path", "reason", "detail")
LABELS: tuple[str, ...] = ("cat", "dog")
SPLITS: tuple[str, ...] = ("train", "val", "test")

# Percent buckets: [0, 80) train, [80, 90) val, [90, 100) test.
_SPLIT_BOUNDS: tuple[tuple[int, str], ...] = ((80, "train"), (90, "val"), (100, "test"))


class ManifestError(ValueError):
    """The manifest file is missing or does not have the contracted columns and values."""


def split_for(sha256: str) -> str:
    """The split of an image, from its content hash alone.

    A hash is uniform, so each label's images fall 80/10/10 up to sampling noise (stratified in
    expectation), and an image's split never changes when other images are added or removed.
    """
    bucket = int(sha256[:8], 16) % 100
    for bound, split in _SPLIT_BOUNDS:
        if bucket < bound:
            return split
    raise AssertionError("unreachable: bucket is below 100")


def cache_path(cache_dir: Path | str, image_size: int, sha256: str) -> Path:
    """``<cache_dir>/<S>/<sha256>.npy``: the preprocessed ``uint8 [S,S,3]`` array of one image."""
    return Path(cache_dir) / str(int(image_size)) / f"{sha256}.npy"


def load_manifest(path: Path | str) -> pd.DataFrame:
    """Read and validate a manifest (CSV, or Parquet by extension)."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}. Run `python -m training.data ingest` first.")
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path, dtype={"sha256": str, "label": str, "split": str, "path": str, "format": str})
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(MANIFEST_COLUMNS)}"
        )
    bad_labels = sorted(set(df["label"]) - set(LABELS))
    if bad_labels:
        raise ManifestError(f"{path}: unknown label(s) {bad_labels}; expected {', '.join(LABELS)}")
    bad_splits = sorted(set(df["split"]) - set(SPLITS))
    if bad_splits:
        raise ManifestError(f"{path}: unknown split(s) {bad_splits}; expected {', '.join(SPLITS)}")
    if df["sha256"].duplicated().any():
        raise ManifestError(f"{path}: duplicate sha256 values; re-run ingest")
    return df[list(MANIFEST_COLUMNS)]


def write_table(df: pd.DataFrame, path: Path) -> None:
    """Write CSV (or Parquet by extension) atomically, so a crash never leaves half a manifest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".parquet":
        df.to_parquet(tmp, index=False)
    else:
        df.to_csv(tmp, index=False, lineterminator="\n")
    tmp.replace(path)
