"""Layout detection: the four layouts, wrapper folders, and clear errors for the rest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from training.sources import SourceError, detect_source

PhotoFactory = Callable[..., bytes]


def _write(root: Path, names: list[str], photo: PhotoFactory) -> None:
    for seed, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(photo(seed=seed))


def _labels(root: Path) -> dict[str, str]:
    source = detect_source(root)
    return {f.path.relative_to(root).as_posix(): f.label for f in source.files}


def test_petimages_layout_under_its_wrapper(tmp_path: Path, photo: PhotoFactory) -> None:
    # What Microsoft's zip extracts to: PetImages/{Cat,Dog} beside a readme and a licence.
    _write(tmp_path, ["PetImages/Cat/0.jpg", "PetImages/Cat/1.jpg", "PetImages/Dog/0.jpg"], photo)
    (tmp_path / "readme[1].txt").write_text("licence text")
    source = detect_source(tmp_path)
    assert source.layout == "PetImages"
    assert _labels(tmp_path) == {
        "PetImages/Cat/0.jpg": "cat",
        "PetImages/Cat/1.jpg": "cat",
        "PetImages/Dog/0.jpg": "dog",
    }


def test_plain_class_folders_with_nesting(tmp_path: Path, photo: PhotoFactory) -> None:
    _write(tmp_path, ["cat/a.jpg", "cat/sub/b.jpg", "dog/c.png"], photo)
    assert detect_source(tmp_path).layout == "class-folders"
    assert _labels(tmp_path) == {"cat/a.jpg": "cat", "cat/sub/b.jpg": "cat", "dog/c.png": "dog"}
    assert detect_source(tmp_path).outside == []


def test_files_beside_the_layout_are_listed(tmp_path: Path, photo: PhotoFactory) -> None:
    # As in pets-dev: a README and a manifest next to cat/ and dog/.
    _write(tmp_path, ["cat/a.jpg", "dog/b.jpg", "README.md", "notes/x.jpg"], photo)
    source = detect_source(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in source.outside) == ["README.md", "notes/x.jpg"]


def test_plural_class_folders(tmp_path: Path, photo: PhotoFactory) -> None:
    _write(tmp_path, ["training_set/cats/a.jpg", "training_set/dogs/b.jpg"], photo)
    assert _labels(tmp_path / "training_set") == {"cats/a.jpg": "cat", "dogs/b.jpg": "dog"}


def test_kaggle_flat_names(tmp_path: Path, photo: PhotoFactory) -> None:
    _write(tmp_path, ["train/cat.0.jpg", "train/cat.12.jpg", "train/dog.7.jpg", "train/horse.1.jpg"], photo)
    source = detect_source(tmp_path)
    assert source.layout == "kaggle-flat"
    assert _labels(tmp_path) == {
        "train/cat.0.jpg": "cat",
        "train/cat.12.jpg": "cat",
        "train/dog.7.jpg": "dog",
    }
    assert [p.name for p in source.unlabelled] == ["horse.1.jpg"]  # reported, not silently dropped


def test_oxford_iiit_pet_capitalised_names_are_cats(tmp_path: Path, photo: PhotoFactory) -> None:
    names = [
        "images/Abyssinian_1.jpg",
        "images/Bengal_20.jpg",
        "images/american_bulldog_3.jpg",
        "images/pug_4.jpg",
    ]
    _write(tmp_path, [*names, "annotations/list.txt"], photo)
    (tmp_path / "images" / "Abyssinian_1.mat").write_bytes(b"MATLAB")  # present in the real set
    (tmp_path / "images" / "README").write_text("no label in this name")
    source = detect_source(tmp_path)
    assert source.layout == "oxford-iiit-pet"
    labels = _labels(tmp_path)
    assert labels == {
        "images/Abyssinian_1.jpg": "cat",
        "images/Abyssinian_1.mat": "cat",  # labelled by name; ingest rejects it as a non-image
        "images/Bengal_20.jpg": "cat",
        "images/american_bulldog_3.jpg": "dog",
        "images/pug_4.jpg": "dog",
    }
    assert [p.name for p in source.unlabelled] == ["README"]


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        detect_source(tmp_path / "nope")


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="empty"):
        detect_source(tmp_path)


def test_empty_class_folders(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    (tmp_path / "dog").mkdir()
    with pytest.raises(SourceError, match="no files"):
        detect_source(tmp_path)


def test_unlabelled_folder(tmp_path: Path, photo: PhotoFactory) -> None:
    _write(tmp_path, ["IMG_001.jpg", "IMG_002.jpg", "holiday/IMG_003.jpg"], photo)
    with pytest.raises(SourceError, match="cannot tell cats from dogs"):
        detect_source(tmp_path)


def test_one_class_only(tmp_path: Path, photo: PhotoFactory) -> None:
    _write(tmp_path, ["cat/a.jpg", "cat/b.jpg"], photo)
    with pytest.raises(SourceError, match="no dog files"):
        detect_source(tmp_path)


def test_a_file_instead_of_a_folder(tmp_path: Path) -> None:
    (tmp_path / "x.zip").write_bytes(b"PK")
    with pytest.raises(SourceError, match="not a folder"):
        detect_source(tmp_path / "x.zip")
