"""The facts a served model carries about itself: ONNX ``metadata_props`` and Triton config ``parameters``.

One key set for both places, so a consumer reads the same names from either:

| key | value |
|---|---|
| ``class_names`` | JSON list, index order (``["cat", "dog"]``) |
| ``image_size`` | input side in pixels (``"224"``) |
| ``input_format`` | ``"RGB uint8 NHWC"`` |
| ``mean`` / ``std`` | JSON lists baked into the graph (informational: the client never normalises) |
| ``architecture`` | ``training.models`` name |
| ``mlflow_model_name`` / ``model_version_mlflow`` / ``mlflow_run_id`` | registry origin ("" when unknown) |
| ``manifest_sha256`` | hash of the data manifest the model was trained on |
| ``git_sha`` | commit the model was trained at; ``export_git_sha``: commit that exported it |
| ``triton_model_version`` | numeric version directory the file was exported to |
| ``exported_at`` | UTC ISO-8601 time of the export |
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import onnx

from contract.paths import PROJECT_ROOT

INPUT_FORMAT = "RGB uint8 NHWC"


@dataclass(frozen=True, kw_only=True)
class ModelFacts:
    class_names: tuple[str, ...]
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    architecture: str
    mlflow_model_name: str = ""
    model_version_mlflow: str = ""
    mlflow_run_id: str = ""
    manifest_sha256: str = "unknown"
    git_sha: str = "unknown"
    export_git_sha: str = "unknown"
    triton_model_version: int = 0
    exported_at: str = ""
    input_format: str = INPUT_FORMAT

    def as_strings(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in asdict(self).items():
            out[key] = json.dumps(list(value)) if isinstance(value, tuple | list) else str(value)
        return out

    @classmethod
    def from_strings(cls, values: dict[str, str]) -> ModelFacts:
        missing = [f.name for f in fields(cls) if f.name not in values]
        if missing:
            raise ValueError(f"model metadata lacks {', '.join(missing)}")
        return cls(
            class_names=tuple(json.loads(values["class_names"])),
            image_size=int(values["image_size"]),
            mean=tuple(float(v) for v in json.loads(values["mean"])),
            std=tuple(float(v) for v in json.loads(values["std"])),
            architecture=values["architecture"],
            mlflow_model_name=values["mlflow_model_name"],
            model_version_mlflow=values["model_version_mlflow"],
            mlflow_run_id=values["mlflow_run_id"],
            manifest_sha256=values["manifest_sha256"],
            git_sha=values["git_sha"],
            export_git_sha=values["export_git_sha"],
            triton_model_version=int(values["triton_model_version"]),
            exported_at=values["exported_at"],
            input_format=values["input_format"],
        )


def utc_now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def current_git_sha(cwd: Path = PROJECT_ROOT) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def write_onnx_metadata(path: Path, facts: ModelFacts) -> None:
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, facts.as_strings())
    model.producer_name = "cats-dogs-classifier export"
    onnx.save(model, str(path))


def read_onnx_metadata(path: Path) -> dict[str, str]:
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def labels_text(class_names: tuple[str, ...]) -> str:
    """Triton's label file: one class per line, line i = output index i."""
    return "".join(f"{name}\n" for name in class_names)
