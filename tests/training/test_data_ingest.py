"""Ingest of a messy folder: every bad-file kind is reported with its reason, never dropped or fatal."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from imaging import load_for_model
from training.ingest import IngestResult, ingest, inspect_file
from training.manifest import MANIFEST_COLUMNS, REJECT_COLUMNS, split_for
from training.sources import detect_source

PhotoFactory = Callable[..., bytes]  # the `photo` fixture


def _sixteen_bit_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20).save(buffer, "PNG")
    return buffer.getvalue()


def _exif_rotated_jpeg() -> bytes:
    img = Image.new("RGB", (80, 40), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", exif=exif.tobytes(), quality=95)
    return buffer.getvalue()


@pytest.fixture
def messy(tmp_path: Path, photo: PhotoFactory) -> tuple[Path, IngestResult]:
    """One file of each kind the issue lists, in a cat/ + dog/ folder, ingested in-process."""
    cat, dog = tmp_path / "cat", tmp_path / "dog"
    cat.mkdir()
    dog.mkdir()
    good = photo("JPEG", size=(64, 48), seed=1)
    files: dict[Path, bytes] = {
        cat / "good.jpg": good,
        cat / "zero.jpg": b"",
        cat / "truncated.jpg": photo("JPEG", size=(120, 90), seed=2)[:900],
        cat / "notes.jpg": b"this is a text file that someone named .jpg\n",
        cat / "png_named.jpg": photo("PNG", size=(64, 48), seed=3),
        cat / "anim.gif": photo("GIF", "P", size=(64, 48), seed=4),
        cat / "webp_named.jpg": photo("WEBP", size=(64, 48), seed=5),
        cat / "cmyk.jpg": photo("JPEG", "CMYK", size=(64, 48), seed=6),
        cat / "sixteen.png": _sixteen_bit_png(),
        cat / "rotated.jpg": _exif_rotated_jpeg(),
        cat / "tiny.png": photo("PNG", size=(20, 20), seed=7),
        cat / "good_copy.jpg": good,  # exact duplicate of good.jpg
        cat / "Thumbs.db": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100,
        dog / "rgba.png": photo("PNG", "RGBA", size=(64, 48), seed=8),
        dog / "la.png": photo("PNG", "LA", size=(64, 48), seed=9),
        dog / "palette_trns.png": photo("PNG", "P", size=(64, 48), seed=10, transparency=0),
        dog / "grey.bmp": photo("BMP", "L", size=(64, 48), seed=11),
        dog / "good.webp": photo("WEBP", size=(64, 48), seed=12),
        dog / "truncated.png": photo("PNG", size=(120, 90), seed=13)[:400],
    }
    for path, data in files.items():
        path.write_bytes(data)
    result = ingest(detect_source(tmp_path), min_size=32, workers=1, progress=False)
    return tmp_path, result


def _by_name(df: pd.DataFrame) -> dict[str, dict[str, object]]:
    return {Path(str(row["path"])).name: row for row in df.to_dict("records")}


def test_each_bad_kind_is_rejected_with_its_reason(messy: tuple[Path, IngestResult]) -> None:
    _, result = messy
    rejects = _by_name(result.rejects)
    expected = {
        "zero.jpg": "empty",
        "truncated.jpg": "corrupt",
        "truncated.png": "corrupt",
        "notes.jpg": "unsupported_format",
        "Thumbs.db": "unsupported_format",
        "tiny.png": "too_small",
        "good_copy.jpg": "duplicate",
    }
    assert {name: row["reason"] for name, row in rejects.items()} == expected
    assert "good.jpg" in str(rejects["good_copy.jpg"]["detail"])
    assert all(str(row["detail"]) for row in rejects.values())


def test_every_file_is_accounted_for(messy: tuple[Path, IngestResult]) -> None:
    root, result = messy
    on_disk = {p.name for p in root.rglob("*") if p.is_file()}
    reported = {Path(p).name for p in [*result.manifest["path"], *result.rejects["path"]]}
    assert reported == on_disk
    assert len(result.manifest) + len(result.rejects) == len(on_disk)


def test_accepted_files_record_their_true_format(messy: tuple[Path, IngestResult]) -> None:
    _, result = messy
    rows = _by_name(result.manifest)
    assert {name: row["format"] for name, row in rows.items()} == {
        "good.jpg": "JPEG",
        "png_named.jpg": "PNG",
        "anim.gif": "GIF",
        "webp_named.jpg": "WEBP",
        "cmyk.jpg": "JPEG",
        "sixteen.png": "PNG",
        "rotated.jpg": "JPEG",
        "rgba.png": "PNG",
        "la.png": "PNG",
        "palette_trns.png": "PNG",
        "grey.bmp": "BMP",
        "good.webp": "WEBP",
    }
    assert result.misnamed == 2
    assert {"CMYK", "I;16", "RGBA", "LA", "P", "L", "RGB"} <= set(result.modes)
    assert "2 file(s) accepted by content" in result.summary()


def test_exif_orientation_sets_the_recorded_size(messy: tuple[Path, IngestResult]) -> None:
    rows = _by_name(messy[1].manifest)
    assert (rows["rotated.jpg"]["width"], rows["rotated.jpg"]["height"]) == (40, 80)
    assert (rows["good.jpg"]["width"], rows["good.jpg"]["height"]) == (64, 48)


def test_manifest_rows_are_consistent(messy: tuple[Path, IngestResult]) -> None:
    _, result = messy
    m = result.manifest
    assert tuple(m.columns) == MANIFEST_COLUMNS
    assert tuple(result.rejects.columns) == REJECT_COLUMNS
    assert m["sha256"].is_unique
    for row in m.to_dict("records"):
        data = Path(row["path"]).read_bytes()
        assert row["bytes"] == len(data)
        assert row["split"] == split_for(row["sha256"])
        assert row["label"] == Path(row["path"]).parent.name
        # Every accepted file goes through the model path without error, as RGB.
        assert load_for_model(data, 32).shape == (32, 32, 3)


def test_min_size_is_configurable(tmp_path: Path, photo: PhotoFactory) -> None:
    path = tmp_path / "small.png"
    path.write_bytes(photo("PNG", size=(40, 30)))
    assert inspect_file(path, "cat", min_size=30).__class__.__name__ == "Accepted"
    rejected = inspect_file(path, "cat", min_size=31)
    assert getattr(rejected, "reason", None) == "too_small"


def test_same_bytes_under_both_labels_are_all_rejected(tmp_path: Path, photo: PhotoFactory) -> None:
    for seed, label in enumerate(("cat", "dog")):
        (tmp_path / label).mkdir()
        (tmp_path / label / "ok.jpg").write_bytes(photo(seed=seed))
    shared = photo(seed=99)
    (tmp_path / "cat" / "same.jpg").write_bytes(shared)
    (tmp_path / "dog" / "same.jpg").write_bytes(shared)
    result = ingest(detect_source(tmp_path), workers=1, progress=False)
    assert sorted(result.manifest["path"].map(lambda p: Path(p).name)) == ["ok.jpg", "ok.jpg"]
    assert list(result.rejects["reason"]) == ["conflicting_labels", "conflicting_labels"]


def test_process_pool_gives_the_same_result(synthetic_dir: Path) -> None:
    source = detect_source(synthetic_dir)
    serial = ingest(source, workers=1, progress=False)
    pooled = ingest(source, workers=2, progress=False)
    assert len(source.files) >= 64  # large enough to take the pool path
    pd.testing.assert_frame_equal(serial.manifest, pooled.manifest)
    assert len(serial.manifest) == 80 and serial.rejects.empty


def test_train_only_sources_never_reach_val_or_test(
    tmp_path: Path, class_folders: Callable[..., Path]
) -> None:
    """Extra photos that do not look like what users send may teach the model, never judge it."""
    main = class_folders(tmp_path / "main", 30)
    extra = class_folders(tmp_path / "extra", 30, start=1000)
    result = ingest(detect_source(main), train_only=[detect_source(extra)], workers=1, progress=False)
    manifest = result.manifest
    from_extra = manifest["path"].str.contains("/extra/")
    assert from_extra.sum() == 60 and (~from_extra).sum() == 60
    assert set(manifest.loc[from_extra, "split"]) == {"train"}
    # The evaluation source keeps its hash-based split: adding extra data never moves its photos.
    main_only = ingest(detect_source(main), workers=1, progress=False).manifest
    assert manifest.loc[~from_extra, "split"].tolist() == main_only["split"].tolist()
    assert {"val", "test"} <= set(main_only["split"])  # 60 photos: both held-out splits exist
    assert "(train only)" in result.layout


def test_a_train_only_copy_of_an_evaluation_photo_is_dropped_not_trained_on(
    tmp_path: Path, photo: PhotoFactory
) -> None:
    main, extra = tmp_path / "a", tmp_path / "z"  # "z" sorts last: path order alone would keep main's copy
    for root in (main, extra):
        (root / "cat").mkdir(parents=True)
        (root / "dog").mkdir(parents=True)
    shared_bytes = photo("JPEG", size=(64, 48), seed=7)
    (main / "cat" / "x.jpg").write_bytes(shared_bytes)
    (main / "dog" / "d.jpg").write_bytes(photo("JPEG", size=(64, 48), seed=8))
    (extra / "cat" / "a_copy.jpg").write_bytes(shared_bytes)
    (extra / "dog" / "e.jpg").write_bytes(photo("JPEG", size=(64, 48), seed=9))
    # Reverse the names: the train-only copy now sorts first by path, and must still lose.
    main2, extra2 = tmp_path / "z2", tmp_path / "a2"
    main.rename(main2)
    extra.rename(extra2)
    result = ingest(detect_source(main2), train_only=[detect_source(extra2)], workers=1, progress=False)
    kept = result.manifest
    assert len(kept) == 3 and not kept["path"].str.contains("/a2/cat/").any()
    assert kept.loc[kept["path"].str.endswith("x.jpg"), "split"].item() == split_for(
        kept.loc[kept["path"].str.endswith("x.jpg"), "sha256"].item()
    )
    dupes = result.rejects[result.rejects["reason"] == "duplicate"]
    assert dupes["path"].str.contains("/a2/cat/a_copy.jpg").all() and len(dupes) == 1
