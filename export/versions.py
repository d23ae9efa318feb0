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

from export.contract import VERSIONS_FILENAME


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

    @classmethod
    def load(cls, model_dir: Path) -> VersionLog:
        path = Path(model_dir) / VERSIONS_FILENAME
        if not path.is_file():
            return cls(path)
        data = json.loads(path.read_text())
        return cls(path, [VersionRecord(**r) for r in data.get("versions", [])])

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "comment": "Triton model version <-> MLflow model version; written by python -m export",
            "versions": [asdict(r) for r in sorted(self.records, key=lambda r: r.triton_version)],
        }
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
