"""Result files that survive a kill: every append is whole rows or nothing.

CSV: each batch is one ``write`` of complete lines on an O_APPEND descriptor followed by
fsync; a torn last line (kill mid-write) is cut off when the file is reopened.
Parquet: the output is a folder of part files, each written to a temp name and renamed.
Either way, a rerun reads back which ``(path, sha256)`` pairs are done and skips them.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO


@dataclass(frozen=True)
class ScoredImage:
    path: str
    sha256: str
    predicted_class: str
    confidence: float
    probabilities: tuple[float, ...]
    model_version: str


def columns(class_names: Sequence[str]) -> list[str]:
    return [
        "path",
        "sha256",
        "predicted_class",
        "confidence",
        *(f"prob_{name}" for name in class_names),
        "model_version",
    ]


def _row(item: ScoredImage) -> list[str]:
    return [
        item.path,
        item.sha256,
        item.predicted_class,
        f"{item.confidence:.6f}",
        *(f"{p:.6f}" for p in item.probabilities),
        item.model_version,
    ]


class ResultWriter(Protocol):
    def done(self) -> set[tuple[str, str]]: ...
    def append(self, items: Sequence[ScoredImage]) -> None: ...
    def close(self) -> None: ...


class CsvResultWriter:
    def __init__(self, path: Path, class_names: Sequence[str]) -> None:
        self.path = path
        self.header = columns(class_names)
        self._cut_torn_tail()
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open(newline="") as fh:
                found = next(csv.reader(fh), [])
            if found != self.header:
                raise ValueError(
                    f"{path} exists with columns {found}, expected {self.header}: "
                    "was it written for another model? Use a new output path."
                )
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if os.fstat(self._fd).st_size == 0:
            self._write([self.header])

    def _cut_torn_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with self.path.open("r+b") as fh:
                fh.truncate(keep)

    def done(self) -> set[tuple[str, str]]:
        with self.path.open(newline="") as fh:
            return {(row["path"], row["sha256"]) for row in csv.DictReader(fh)}

    def append(self, items: Sequence[ScoredImage]) -> None:
        if items:
            self._write([_row(item) for item in items])

    def _write(self, rows: list[list[str]]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        os.write(self._fd, buffer.getvalue().encode("utf-8"))
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


class ParquetResultWriter:
    def __init__(self, path: Path, class_names: Sequence[str]) -> None:
        self.path = path
        self.header = columns(class_names)
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} exists and is not a folder of Parquet parts")
        path.mkdir(exist_ok=True)
        for stale in path.glob("*.tmp"):
            stale.unlink()  # parts a killed run never renamed are not results
        self._next = 1 + max((int(p.stem.split("-")[1]) for p in path.glob("part-*.parquet")), default=0)

    def done(self) -> set[tuple[str, str]]:
        import pyarrow.parquet as pq

        pairs: set[tuple[str, str]] = set()
        for part in sorted(self.path.glob("part-*.parquet")):
            table = pq.read_table(part, columns=["path", "sha256"])
            pairs.update(zip(table["path"].to_pylist(), table["sha256"].to_pylist(), strict=True))
        return pairs

    def append(self, items: Sequence[ScoredImage]) -> None:
        if not items:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        data: dict[str, list[object]] = {name: [] for name in self.header}
        prob_columns = self.header[4:-1]
        for item in items:
            data["path"].append(item.path)
            data["sha256"].append(item.sha256)
            data["predicted_class"].append(item.predicted_class)
            data["confidence"].append(item.confidence)
            for column, value in zip(prob_columns, item.probabilities, strict=True):
                data[column].append(value)
            data["model_version"].append(item.model_version)
        final = self.path / f"part-{self._next:06d}.parquet"
        tmp = final.with_suffix(".tmp")
        pq.write_table(pa.table(data), tmp)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        tmp.replace(final)
        self._next += 1

    def close(self) -> None:
        pass


def open_writer(path: Path, class_names: Sequence[str]) -> ResultWriter:
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {path.parent}")
    if path.suffix == ".parquet":
        return ParquetResultWriter(path, class_names)
    if path.suffix == ".csv":
        return CsvResultWriter(path, class_names)
    raise ValueError(f"output must end in .csv or .parquet, got {path.name}")


class ErrorLog:
    """Per-file failures of this run (rewritten each run: files that failed are retried next time).

    The file exists only when there is a failure: a clean run leaves none behind (and removes the
    list of an earlier run, whose files have just been retried).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._fh: TextIO | None = None
        self._writer: Any = None
        path.unlink(missing_ok=True)

    def add(self, path: str, error: str, detail: str) -> None:
        if self._fh is None:
            self._fh = self.path.open("w", newline="")
            self._writer = csv.writer(self._fh, lineterminator="\n")
            self._writer.writerow(["path", "error", "detail"])
        self._writer.writerow([path, error, detail])
        self._fh.flush()
        self.count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
