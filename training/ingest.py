"""Source folder → validated, deduplicated, split manifest, plus a report of every rejected file.

Every file is decoded completely by :func:`imaging.decode_image` (the same decoder serving
uses), so a file that would crash a training epoch is rejected here with its reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from imaging import DecodeLimits, ImageError, decode_image
from training.manifest import MANIFEST_COLUMNS, REJECT_COLUMNS, SPLITS, split_for, write_table
from training.parallel import parallel_map
from training.sources import Source

# Training data may be larger than a public upload (the gateway's 10 MB cap), but a pixel cap
# still keeps a decompression bomb from exhausting memory. Preprocess decodes with the same limits.
INGEST_LIMITS = DecodeLimits(max_bytes=64 * 1024 * 1024, max_pixels=50_000_000)

_EXTENSION_FORMATS: dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".png": "PNG",
    ".gif": "GIF",
    ".bmp": "BMP",
    ".webp": "WEBP",
}


@dataclass(frozen=True)
class Accepted:
    path: Path
    label: str
    sha256: str
    format: str
    width: int
    height: int
    bytes: int
    mode: str
    misnamed: bool  # the extension names another format than the content
    train_only: bool = False  # from a source that may only ever feed the train split


@dataclass(frozen=True)
class Rejected:
    path: Path
    reason: str
    detail: str


@dataclass
class IngestResult:
    layout: str
    manifest: pd.DataFrame
    rejects: pd.DataFrame
    seconds: float
    misnamed: int = 0
    modes: Counter[str] = field(default_factory=Counter)
    outside: list[str] = field(default_factory=list)  # files next to the layout, not part of it

    def summary(self) -> str:
        m, r = self.manifest, self.rejects
        lines = [f"layout: {self.layout}; accepted {len(m)} images, rejected {len(r)} ({self.seconds:.1f} s)"]
        if len(m):
            table = pd.crosstab(m["label"], m["split"]).reindex(columns=list(SPLITS), fill_value=0)
            for label, row in table.iterrows():
                counts = ", ".join(f"{split} {row[split]}" for split in SPLITS)
                lines.append(f"  {label}: {row.sum()} ({counts})")
            formats = ", ".join(f"{k} {v}" for k, v in m["format"].value_counts().sort_index().items())
            lines.append(f"  formats: {formats}")
            modes = ", ".join(f"{k} {v}" for k, v in sorted(self.modes.items()))
            lines.append(f"  modes as stored (all become RGB): {modes}")
        if self.misnamed:
            lines.append(
                f"  {self.misnamed} file(s) accepted by content although the extension names another format"
            )
        if self.outside:
            examples = ", ".join(self.outside[:3]) + (", …" if len(self.outside) > 3 else "")
            lines.append(
                f"  {len(self.outside)} file(s) outside the {self.layout} layout not considered: {examples}"
            )
        if len(r):
            reasons = ", ".join(f"{k} {v}" for k, v in r["reason"].value_counts().sort_index().items())
            lines.append(f"  rejects by reason: {reasons}")
        return "\n".join(lines)


def display_path(path: Path) -> str:
    """Relative to the working directory when under it, so manifests do not depend on the checkout."""
    absolute = path.resolve()
    try:
        return absolute.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return absolute.as_posix()


def inspect_file(
    path: Path, label: str, min_size: int, limits: DecodeLimits = INGEST_LIMITS
) -> Accepted | Rejected:
    """Decode one file fully; never raises, so one bad file cannot stop an ingest."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Rejected(path, "unreadable", f"{type(exc).__name__}: {exc}")
    try:
        decoded = decode_image(data, limits=limits)
    except ImageError as exc:
        return Rejected(path, exc.kind, exc.detail)
    except Exception as exc:  # a decoder bug must become a report line, not a crashed ingest
        return Rejected(path, "corrupt", f"{type(exc).__name__}: {exc}")
    width, height = decoded.image.size  # after EXIF orientation: what the model will see
    if min(width, height) < min_size:
        return Rejected(path, "too_small", f"{width}x{height} is below the minimum side of {min_size}px")
    expected = _EXTENSION_FORMATS.get(path.suffix.lower())
    return Accepted(
        path=path,
        label=label,
        sha256=hashlib.sha256(data).hexdigest(),
        format=decoded.format,
        width=width,
        height=height,
        bytes=len(data),
        mode=decoded.original_mode,
        misnamed=expected is not None and expected != decoded.format,
    )


def _inspect_task(task: tuple[Path, str, int, DecodeLimits, bool]) -> Accepted | Rejected:
    path, label, min_size, limits, train_only = task
    result = inspect_file(path, label, min_size, limits)
    if isinstance(result, Accepted) and train_only:
        return dataclasses.replace(result, train_only=True)
    return result


def _deduplicate(accepted: Iterable[Accepted]) -> tuple[list[Accepted], list[Rejected]]:
    """Keep the first file (in path order) of each content hash; the rest are reported.

    The same bytes under both labels is a labelling error: every copy is rejected, since
    keeping either one would train on a label the data set itself contradicts.
    """
    by_hash: dict[str, list[Accepted]] = {}
    for item in sorted(accepted, key=lambda a: (a.train_only, a.path.as_posix())):
        by_hash.setdefault(item.sha256, []).append(item)
    kept: list[Accepted] = []
    rejected: list[Rejected] = []
    for copies in by_hash.values():
        first = copies[0]
        labels = sorted({c.label for c in copies})
        if len(labels) > 1:
            others = ", ".join(f"{display_path(c.path)} ({c.label})" for c in copies)
            rejected.extend(
                Rejected(c.path, "conflicting_labels", f"same content under: {others}") for c in copies
            )
            continue
        kept.append(first)
        rejected.extend(
            Rejected(c.path, "duplicate", f"same content as {display_path(first.path)}") for c in copies[1:]
        )
    return kept, rejected


def ingest(
    source: Source,
    *,
    train_only: Sequence[Source] = (),
    min_size: int = 32,
    workers: int | None = None,
    limits: DecodeLimits = INGEST_LIMITS,
    progress: bool = True,
) -> IngestResult:
    """Decode, validate, deduplicate and split every file of ``source`` (and of ``train_only``).

    ``train_only`` sources only ever enter the train split: extra photos that do not look like
    what users send (pets-more: 200×200, squashed) may teach the model, but validation and test
    must stay the photos the model will be judged on.
    """
    start = time.perf_counter()
    workers = workers if workers is not None else (os.cpu_count() or 1)
    tasks = [(f.path, f.label, min_size, limits, False) for f in source.files]
    tasks += [(f.path, f.label, min_size, limits, True) for extra in train_only for f in extra.files]
    results = list(parallel_map(_inspect_task, tasks, workers=workers, desc="ingest", progress=progress))

    accepted = [r for r in results if isinstance(r, Accepted)]
    rejected = [r for r in results if isinstance(r, Rejected)]
    rejected.extend(
        Rejected(p, "unlabelled", f"file name gives no label in the {src.layout} layout")
        for src in (source, *train_only)
        for p in src.unlabelled
    )
    kept, duplicates = _deduplicate(accepted)
    rejected.extend(duplicates)

    manifest = pd.DataFrame(
        [
            {
                "sha256": a.sha256,
                "label": a.label,
                "split": "train" if a.train_only else split_for(a.sha256),
                "path": display_path(a.path),
                "format": a.format,
                "width": a.width,
                "height": a.height,
                "bytes": a.bytes,
            }
            for a in kept
        ],
        columns=list(MANIFEST_COLUMNS),
    )
    manifest = manifest.sort_values("path", kind="stable").reset_index(drop=True)
    rejects = pd.DataFrame(
        [{"path": display_path(r.path), "reason": r.reason, "detail": r.detail} for r in rejected],
        columns=list(REJECT_COLUMNS),
    )
    rejects = rejects.sort_values(["path", "reason"], kind="stable").reset_index(drop=True)
    layouts = [source.layout] + [f"{extra.layout} (train only)" for extra in train_only]
    return IngestResult(
        layout=" + ".join(layouts),
        manifest=manifest,
        rejects=rejects,
        seconds=time.perf_counter() - start,
        misnamed=sum(a.misnamed for a in kept),
        modes=Counter(a.mode for a in kept),
        outside=[display_path(p) for src in (source, *train_only) for p in src.outside],
    )


def write_outputs(result: IngestResult, manifest_path: Path, rejects_path: Path) -> None:
    write_table(result.manifest, manifest_path)
    write_table(result.rejects, rejects_path)
