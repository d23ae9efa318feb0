"""Record an exported Triton version in the MLflow registry, so a cluster can pull it (export.pull).

Each export that came from a registered model version uploads a one-version Triton repository
(``cats_dogs/config.pbtxt``, ``labels.txt``, ``<v>/model.onnx`` + variants + baseline) and a
``MANIFEST.json`` of sha256 sums to the version's run under ``triton/v<triton version>``, then
tags the model version with where it is and the manifest's own sha256. The puller trusts nothing
it downloads until every checksum matches, so a truncated or altered artifact fails the init step
instead of reaching Triton.

The registry is the delivery channel: promoting is moving an alias, and every Triton pod pulls
what the alias names when it starts (docs/DEPLOYMENT.md).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contract.model import CONFIG_FILENAME, LABELS_FILENAME, MODEL_NAME

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from export.versions import VersionRecord

MANIFEST_FILENAME = "MANIFEST.json"
# Model-version tags: the contract between export and export.pull.
TAG_ARTIFACT_PATH = "triton.artifact_path"  # run-relative folder holding MANIFEST.json + cats_dogs/
TAG_RUN_ID = "triton.run_id"
TAG_TRITON_VERSION = "triton.version"
TAG_MANIFEST_SHA256 = "triton.manifest_sha256"
MANIFEST_FORMAT = 1


class PublishError(RuntimeError):
    """The version was exported locally but could not be recorded in the registry."""


@dataclass(frozen=True)
class Published:
    model_name: str
    model_version: str
    triton_version: int
    artifact_path: str
    manifest_sha256: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_manifest(root: Path, triton_version: int, extra: dict[str, Any]) -> dict[str, Any]:
    files = {
        str(p.relative_to(root)): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST_FILENAME
    }
    return {
        "format": MANIFEST_FORMAT,
        "model": MODEL_NAME,
        "triton_version": triton_version,
        "files": files,
        **extra,
    }


def stage_version(model_dir: Path, triton_version: int, target: Path) -> None:
    """A one-version Triton repository under ``target``: ``<name>/{config,labels,<v>/...}``."""
    model = target / MODEL_NAME
    (model / str(triton_version)).mkdir(parents=True)
    shutil.copy2(model_dir / CONFIG_FILENAME, model / CONFIG_FILENAME)
    shutil.copy2(model_dir / LABELS_FILENAME, model / LABELS_FILENAME)
    for item in (model_dir / str(triton_version)).iterdir():
        if item.is_file():
            shutil.copy2(item, model / str(triton_version) / item.name)


def publish(
    model_dir: Path,
    record: VersionRecord,
    client: MlflowClient | None = None,
    say: Callable[[str], None] = print,
) -> Published | None:
    """Upload Triton version ``record.triton_version`` as artifacts of its MLflow model version.

    None (and a line saying so) when the export did not come from a registered version, e.g. a
    ``--checkpoint`` export: there is nothing in the registry to attach it to.
    """
    if not (record.mlflow_model_name and record.mlflow_version and record.mlflow_run_id):
        say("registry: not published (the export did not come from a registered model version)")
        return None
    from mlflow.exceptions import MlflowException

    if client is None:
        from export.source import mlflow_client

        client = mlflow_client()
    artifact_path = f"triton/v{record.triton_version}"
    with tempfile.TemporaryDirectory(prefix="triton-publish-") as tmp:
        staged = Path(tmp)
        stage_version(model_dir, record.triton_version, staged)
        manifest = build_manifest(
            staged,
            record.triton_version,
            {"mlflow_model_name": record.mlflow_model_name, "mlflow_version": record.mlflow_version},
        )
        (staged / MANIFEST_FILENAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        manifest_sha = sha256_file(staged / MANIFEST_FILENAME)
        name, version = record.mlflow_model_name, record.mlflow_version
        try:
            client.log_artifacts(record.mlflow_run_id, str(staged), artifact_path)
            for key, value in (
                (TAG_ARTIFACT_PATH, artifact_path),
                (TAG_RUN_ID, record.mlflow_run_id),
                (TAG_TRITON_VERSION, str(record.triton_version)),
                (TAG_MANIFEST_SHA256, manifest_sha),
            ):
                client.set_model_version_tag(name, version, key, value)
        except (MlflowException, OSError) as exc:
            raise PublishError(
                f"Triton version {record.triton_version} was written locally but not recorded on "
                f"{name} v{version}: {exc}"
            ) from exc
    say(f"registry: Triton version {record.triton_version} recorded on {name} v{version} ({artifact_path})")
    return Published(name, version, record.triton_version, artifact_path, manifest_sha)


def publish_export(model_dir: Path, record: VersionRecord | None, say: Callable[[str], None] = print) -> None:
    """The export pipeline's hook (one line in export/pipeline.py)."""
    if record is not None:
        publish(model_dir, record, say=say)
