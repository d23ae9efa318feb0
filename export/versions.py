"""Triton version ↔ MLflow version mapping: ``model_repository/cats_dogs/versions.json`` (generated).

The file records every export with its origin and the test metrics the gate measured, and marks
rolled-back versions. "Served" means the newest version directory that exists in the repository
and is not marked rolled back: Triton serves the highest version by default.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from contract.model import ONNX_FILENAME, VERSIONS_FILENAME


@dataclass(kw_only=True)
class VersionRecord:
    triton_version: int
    mlflow_model_name: str = ""
    mlflow_version: str = ""
    mlflow_run_id: str = ""
    source: str = ""  # how the model was selected: alias:champion, run:<id>, checkpoint:<path>
    exported_at: str = ""
    test_metrics: dict[str, float] = field(default_factory=dict)
    metrics_source: str = ""  # onnx-test-split | mlflow-run | none (forced)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    forced: bool = False
    rolled_back_at: str | None = None

    @property
    def active(self) -> bool:
        return self.rolled_back_at is None


@dataclass
class VersionLog:
    path: Path
    records: list[VersionRecord] = field(default_factory=list)
    # How many versions the export asked Triton to keep loaded; the config may load fewer after an
    # input-size change (see loadable_count), and a rollback needs the number asked for.
    num_versions: int | None = None

    @classmethod
    def load(cls, model_dir: Path) -> VersionLog:
        path = Path(model_dir) / VERSIONS_FILENAME
        if not path.is_file():
            return cls(path)
        data = json.loads(path.read_text())
        records = [VersionRecord(**r) for r in data.get("versions", [])]
        return cls(path, records, data.get("num_versions"))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload: dict[str, Any] = {
            "comment": "Triton model version <-> MLflow model version; written by python -m export",
        }
        if self.num_versions is not None:
            payload["num_versions"] = self.num_versions
        payload["versions"] = [asdict(r) for r in sorted(self.records, key=lambda r: r.triton_version)]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
        tmp.replace(self.path)

    def get(self, version: int) -> VersionRecord | None:
        return next((r for r in self.records if r.triton_version == version), None)

    def put(self, record: VersionRecord) -> None:
        self.records = [r for r in self.records if r.triton_version != record.triton_version] + [record]


def version_dirs(model_dir: Path) -> list[int]:
    """Numeric version directories present on disk, ascending."""
    if not Path(model_dir).is_dir():
        return []
    return sorted(int(p.name) for p in Path(model_dir).iterdir() if p.is_dir() and p.name.isdigit())


def next_version(model_dir: Path, log: VersionLog) -> int:
    """One above every version ever used, on disk or in the log: a rolled-back number is never reused,
    so a version number always names exactly one model."""
    used = version_dirs(model_dir) + [r.triton_version for r in log.records]
    return max(used, default=0) + 1


def served_version(model_dir: Path, log: VersionLog) -> int | None:
    for version in reversed(version_dirs(model_dir)):
        record = log.get(version)
        if record is None or record.active:
            return version
    return None


def loadable_count(sizes_newest_first: list[int | None], limit: int) -> int:
    """How many of the newest versions Triton may load together: up to ``limit``, stopping at the
    first version whose input size differs from the newest one's (``None``: unknown, so different).

    One config describes every loaded version — input dims and the warm-up sample — so an older
    version of another size fails its warm-up and, with ``--exit-on-error``, stops Triton at start-up.
    """
    if not sizes_newest_first:
        return max(limit, 1)
    newest, count = sizes_newest_first[0], 1
    for size in sizes_newest_first[1:limit]:
        if newest is None or size != newest:
            break
        count += 1
    return count


def version_image_size(model_dir: Path, version: int) -> int | None:
    """The input size recorded in a version's ONNX metadata; None when it cannot be read."""
    from export.metadata import read_onnx_metadata  # onnx loads only when a size is asked for

    try:
        return int(read_onnx_metadata(Path(model_dir) / str(version) / ONNX_FILENAME)["image_size"])
    except (OSError, ValueError, KeyError):
        return None
