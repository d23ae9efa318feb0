"""The split: by content hash, so deterministic, stable as data grows, and 80/10/10 within each label."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from training.ingest import ingest
from training.manifest import split_for
from training.sources import detect_source


def _manifest(root: Path) -> pd.DataFrame:
    return ingest(detect_source(root), workers=1, progress=False).manifest


def test_split_is_deterministic(synthetic_dir: Path) -> None:
    first, second = _manifest(synthetic_dir), _manifest(synthetic_dir)
    pd.testing.assert_frame_equal(first, second)


def test_split_does_not_depend_on_file_names_or_order(tmp_path: Path, synthetic_dir: Path) -> None:
    renamed = tmp_path / "renamed"
    for path in sorted(synthetic_dir.rglob("*.*")):
        target = renamed / path.parent.name / f"zz_{path.name[::-1]}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    a = _manifest(synthetic_dir).set_index("sha256")["split"].sort_index()
    b = _manifest(renamed).set_index("sha256")["split"].sort_index()
    pd.testing.assert_series_equal(a, b)


def test_adding_images_never_moves_existing_ones(tmp_path: Path, class_folders: Callable[..., Path]) -> None:
    root = class_folders(tmp_path / "data", 30)
    before = _manifest(root).set_index("sha256")
    class_folders(root, 45, start=30)  # grow the set by 150 %
    after = _manifest(root).set_index("sha256")
    assert len(after) == len(before) + 90
    assert set(before.index) <= set(after.index)
    pd.testing.assert_series_equal(before["split"], after.loc[before.index, "split"])
    # Removing images does not move the rest either.
    for path in sorted((root / "dog").iterdir())[:20]:
        path.unlink()
    shrunk = _manifest(root).set_index("sha256")
    pd.testing.assert_series_equal(shrunk["split"], after.loc[shrunk.index, "split"])


def test_every_label_is_split_80_10_10() -> None:
    # Content hashes of 20,000 distinct images per label, as ingest would compute them.
    for label in ("cat", "dog"):
        splits = pd.Series(
            [split_for(hashlib.sha256(f"{label}-{i}".encode()).hexdigest()) for i in range(20_000)]
        )
        fractions = splits.value_counts(normalize=True)
        assert abs(fractions["train"] - 0.8) < 0.01, fractions
        assert abs(fractions["val"] - 0.1) < 0.01, fractions
        assert abs(fractions["test"] - 0.1) < 0.01, fractions


def test_split_buckets() -> None:
    # int(sha[:8], 16) % 100 → [0, 80) train, [80, 90) val, [90, 100) test
    assert split_for(f"{0:08x}" + "0" * 56) == "train"
    assert split_for(f"{79:08x}" + "f" * 56) == "train"
    assert split_for(f"{80:08x}" + "0" * 56) == "val"
    assert split_for(f"{89:08x}" + "0" * 56) == "val"
    assert split_for(f"{90:08x}" + "0" * 56) == "test"
    assert split_for(f"{199:08x}" + "0" * 56) == "test"


def test_small_real_ingest_has_every_split_for_every_label(synthetic_dir: Path) -> None:
    manifest = _manifest(synthetic_dir)
    table = pd.crosstab(manifest["label"], manifest["split"])
    assert set(table.columns) == {"train", "val", "test"}
    assert (table["train"] >= 0.6 * table.sum(axis=1)).all()
