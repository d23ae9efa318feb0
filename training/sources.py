"""Which files in a folder are cats and which are dogs: the four layouts ingest understands.

- ``PetImages``  — Microsoft's download: ``Cat/`` and ``Dog/`` (possibly under ``PetImages/``);
- ``class-folders`` — plain ``cat/`` + ``dog/`` (or ``cats/`` + ``dogs/``), as ``pets-dev``;
- ``kaggle-flat`` — one folder of ``cat.123.jpg`` / ``dog.45.jpg`` (possibly under ``train/``);
- ``oxford-iiit-pet`` — ``images/Abyssinian_12.jpg``: a capitalised breed name is a cat breed.

Only labels are decided here; whether a file is an image is decided by decoding it in ingest.
Files that sit in a recognised layout but carry no label are returned as unlabelled, so ingest
reports them instead of dropping them silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_CLASS_DIRS: dict[str, str] = {"cat": "cat", "cats": "cat", "dog": "dog", "dogs": "dog"}
_KAGGLE_NAME = re.compile(r"^(cat|dog)[._-]\d+\.[A-Za-z0-9]+$", re.IGNORECASE)
_OXFORD_NAME = re.compile(r"^([A-Za-z][A-Za-z_]*?)_\d+\.[A-Za-z0-9]+$")
# Wrapper folders that archives commonly put around the real layout.
_WRAPPERS = ("PetImages", "train", "images")


class SourceError(ValueError):
    """The folder is missing, empty, or in no layout that says which images are cats and dogs."""


@dataclass(frozen=True)
class LabelledFile:
    path: Path
    label: str  # "cat" or "dog"


@dataclass
class Source:
    layout: str
    root: Path
    files: list[LabelledFile] = field(default_factory=list)
    unlabelled: list[Path] = field(default_factory=list)  # files in the layout without a label
    outside: list[Path] = field(default_factory=list)  # files under root that no layout rule covers

    def count(self, label: str) -> int:
        return sum(1 for f in self.files if f.label == label)


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _class_dirs(root: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for child in sorted(root.iterdir()):
        label = _CLASS_DIRS.get(child.name.lower())
        if child.is_dir() and label:
            found.setdefault(label, []).append(child)
    return found


def _from_class_dirs(root: Path, dirs: dict[str, list[Path]]) -> Source:
    names = {d.name for ds in dirs.values() for d in ds}
    layout = "PetImages" if names <= {"Cat", "Dog"} else "class-folders"
    source = Source(layout, root)
    for label, folders in sorted(dirs.items()):
        for folder in folders:
            source.files.extend(LabelledFile(p, label) for p in _files_under(folder))
    return source


def _from_kaggle_flat(root: Path, files: list[Path]) -> Source:
    source = Source("kaggle-flat", root)
    for path in files:
        match = _KAGGLE_NAME.match(path.name)
        if match:
            source.files.append(LabelledFile(path, match.group(1).lower()))
        else:
            source.unlabelled.append(path)
    return source


def _from_oxford(root: Path, images: Path) -> Source:
    source = Source("oxford-iiit-pet", root)
    for path in _files_under(images):
        match = _OXFORD_NAME.match(path.name)
        if match:
            # The data set's own convention: cat breeds are capitalised, dog breeds are not.
            source.files.append(LabelledFile(path, "cat" if match.group(1)[0].isupper() else "dog"))
        else:
            source.unlabelled.append(path)
    return source


def _detect(root: Path) -> Source | None:
    dirs = _class_dirs(root)
    if dirs:
        return _from_class_dirs(root, dirs)
    top_files = sorted(p for p in root.iterdir() if p.is_file())
    if any(_KAGGLE_NAME.match(p.name) for p in top_files):
        return _from_kaggle_flat(root, top_files)
    images = root / "images"
    if images.is_dir() and any(_OXFORD_NAME.match(p.name) for p in images.iterdir()):
        return _from_oxford(root, images)
    return None


def detect_source(root: Path) -> Source:
    """Find the layout of ``root`` (or of a known wrapper folder inside it) and label its files."""
    root = Path(root)
    if not root.exists():
        raise SourceError(f"source folder not found: {root}")
    if not root.is_dir():
        raise SourceError(f"source is not a folder: {root}")
    if not any(root.iterdir()):
        raise SourceError(f"source folder is empty: {root}")

    source = _detect(root)
    if source is None:
        for name in _WRAPPERS:
            # `images/` is tried as a wrapper only after it failed as the Oxford layout itself.
            inner = root / name
            if inner.is_dir() and (source := _detect(inner)) is not None:
                break
    if source is None:
        raise SourceError(
            f"cannot tell cats from dogs in {root}: expected cat/ + dog/ (or Cat/ + Dog/ as in "
            "PetImages) folders, Kaggle-style names such as cat.123.jpg, or an Oxford-IIIT Pet "
            "images/ folder (Breed_123.jpg, capitalised = cat)"
        )
    if not source.files and not source.unlabelled:
        raise SourceError(f"no files found in the {source.layout} layout under {source.root}")
    covered = {f.path for f in source.files} | set(source.unlabelled)
    source.outside = [p for p in _files_under(source.root) if p not in covered]
    missing = [label for label in ("cat", "dog") if source.count(label) == 0]
    if missing:
        raise SourceError(
            f"{source.root} ({source.layout} layout) has no {' and no '.join(missing)} files; "
            "a classifier needs both classes"
        )
    return source
