"""Preprocess: cache = load_for_model(bytes, S), idempotent, atomic, loud on stale manifests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imaging import load_for_model
from training.data import cache_path, load_manifest
from training.ingest import ingest, write_outputs
from training.manifest import ManifestError
from training.preprocess import preprocess
from training.sources import detect_source


@pytest.fixture
def manifest(tmp_path: Path, synthetic_dir: Path) -> Path:
    result = ingest(detect_source(synthetic_dir), workers=1, progress=False)
    path = tmp_path / "manifest.csv"
    write_outputs(result, path, tmp_path / "rejects.csv")
    return path


def test_cache_holds_exactly_the_model_input(tmp_path: Path, manifest: Path) -> None:
    cache = tmp_path / "cache"
    result = preprocess(manifest, cache, 48, workers=1, progress=False)
    rows = load_manifest(manifest)
    assert (result.written, result.skipped, result.failures) == (len(rows), 0, [])
    for row in rows.head(10).itertuples():
        array = np.load(cache_path(cache, 48, row.sha256))
        assert array.dtype == np.uint8 and array.shape == (48, 48, 3)
        assert np.array_equal(array, load_for_model(Path(row.path).read_bytes(), 48))
    assert sorted(p.name for p in (cache / "48").iterdir()) == sorted(f"{h}.npy" for h in rows["sha256"])


def test_second_run_skips_everything_and_changes_nothing(tmp_path: Path, manifest: Path) -> None:
    cache = tmp_path / "cache"
    preprocess(manifest, cache, 32, workers=2, progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in (cache / "32").iterdir()}
    again = preprocess(manifest, cache, 32, workers=2, progress=False)
    assert again.written == 0 and again.skipped == len(stamps) and not again.failures
    assert {p: p.stat().st_mtime_ns for p in (cache / "32").iterdir()} == stamps


def test_missing_cache_files_are_filled_in(tmp_path: Path, manifest: Path) -> None:
    cache = tmp_path / "cache"
    preprocess(manifest, cache, 32, workers=1, progress=False)
    removed = sorted((cache / "32").iterdir())[:5]
    for path in removed:
        path.unlink()
    result = preprocess(manifest, cache, 32, workers=1, progress=False)
    assert result.written == 5
    assert all(p.is_file() for p in removed)
    assert not list(cache.rglob("*.tmp*"))  # no temp files left behind


def test_sizes_are_cached_side_by_side(tmp_path: Path, manifest: Path) -> None:
    cache = tmp_path / "cache"
    preprocess(manifest, cache, 32, workers=1, progress=False)
    result = preprocess(manifest, cache, 40, workers=1, progress=False)
    assert result.skipped == 0
    sha = load_manifest(manifest)["sha256"].iloc[0]
    assert np.load(cache_path(cache, 40, sha)).shape == (40, 40, 3)


def test_changed_source_file_is_reported_not_cached(tmp_path: Path, manifest: Path) -> None:
    rows = load_manifest(manifest)
    changed = Path(rows["path"].iloc[0])
    copy = tmp_path / "changed" / changed.name
    copy.parent.mkdir()
    copy.write_bytes(changed.read_bytes() + b"\x00")  # same image, other bytes
    rows.loc[0, "path"] = str(copy)
    rows.to_csv(manifest, index=False)
    result = preprocess(manifest, tmp_path / "cache", 32, workers=1, progress=False)
    assert [p for p, _ in result.failures] == [str(copy)]
    assert "re-run ingest" in result.failures[0][1]
    assert not cache_path(tmp_path / "cache", 32, rows["sha256"].iloc[0]).exists()
    assert result.written == len(rows) - 1


def test_cache_path_layout() -> None:
    assert cache_path("data/cache", 224, "ab12") == Path("data/cache/224/ab12.npy")


def test_load_manifest_validates(tmp_path: Path, manifest: Path) -> None:
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(tmp_path / "missing.csv")
    df = pd.read_csv(manifest)
    df.drop(columns=["split"]).to_csv(tmp_path / "no_split.csv", index=False)
    with pytest.raises(ManifestError, match="missing column"):
        load_manifest(tmp_path / "no_split.csv")
    df.assign(label="horse").to_csv(tmp_path / "horse.csv", index=False)
    with pytest.raises(ManifestError, match="unknown label"):
        load_manifest(tmp_path / "horse.csv")
    df.to_parquet(tmp_path / "manifest.parquet", index=False)
    pd.testing.assert_frame_equal(load_manifest(tmp_path / "manifest.parquet"), load_manifest(manifest))
