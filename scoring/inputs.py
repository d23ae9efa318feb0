"""Which files to score: a folder (recursive) or a manifest CSV, optionally one shard of N."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/N"`` with 0 ≤ i < N, e.g. ``3/8`` (matches a Kubernetes JOB_COMPLETION_INDEX)."""
        try:
            index_text, count_text = text.split("/")
            shard = cls(int(index_text), int(count_text))
        except ValueError as exc:
            raise ValueError(f"--shard must look like i/N (e.g. 0/4), got {text!r}") from exc
        if shard.count < 1 or not 0 <= shard.index < shard.count:
            raise ValueError(f"--shard {text!r}: need 0 <= i < N")
        return shard

    def owns(self, key: str) -> bool:
        # A hash of the path, not its position in a listing, so every machine agrees on the
        # partition even if it lists files in another order or new files appear.
        digest = hashlib.sha1(key.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index


ALL = Shard(0, 1)


def list_inputs(source: Path, shard: Shard = ALL) -> list[Path]:
    """Files under a folder (recursive, hidden files skipped) or the ``path`` column of a CSV."""
    if not source.exists():
        raise FileNotFoundError(f"input not found: {source}")
    if source.is_dir():
        files = sorted(
            p
            for p in source.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(source).parts)
        )
        keyed = [(p.relative_to(source).as_posix(), p) for p in files]
    else:
        keyed = [(row, _resolve(source.parent, row)) for row in _manifest_paths(source)]
    return [path for key, path in keyed if shard.owns(key)]


_PATH_COLUMNS = ("path", "relative_path", "file")


def _manifest_paths(manifest: Path) -> list[str]:
    if manifest.suffix.lower() == ".parquet":
        return _parquet_manifest_paths(manifest)
    try:
        with manifest.open(newline="") as fh:
            reader = csv.DictReader(fh)
            column = next((c for c in _PATH_COLUMNS if c in (reader.fieldnames or [])), None)
            if column is None:
                raise ValueError(f"{manifest}: a manifest needs a 'path' column, found {reader.fieldnames}")
            return [row[column] for row in reader if row[column]]
    except UnicodeDecodeError as exc:
        # A photo or another binary file given where a folder or a CSV was expected.
        raise ValueError(
            f"{manifest} is not a text CSV manifest; --input takes a folder of photos, "
            "a CSV with a 'path' column, or a .parquet manifest (to score one photo, put it in a folder)"
        ) from exc


def _parquet_manifest_paths(manifest: Path) -> list[str]:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(manifest)
        column = next((c for c in _PATH_COLUMNS if c in schema.names), None)
        if column is None:
            raise ValueError(f"{manifest}: a manifest needs a 'path' column, found {schema.names}")
        values = pq.read_table(manifest, columns=[column]).column(column).to_pylist()
    except OSError as exc:  # pyarrow's ArrowInvalid for a file that is not Parquet is an OSError too
        raise ValueError(f"{manifest} is not a readable Parquet manifest: {exc}") from exc
    return [str(v) for v in values if v]


def _resolve(base: Path, path_text: str) -> Path:
    path = Path(path_text)
    return path if path.is_absolute() else base / path
