"""Which model to export: a registry alias (default ``champion``), an MLflow run id, or a checkpoint file."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from training.checkpoint import CheckpointMeta, load_checkpoint
from training.models import PetClassifier
from training.registry import CHAMPION, CHECKPOINT_ARTIFACT, REGISTERED_MODEL_NAME, tracking_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient


class SourceError(LookupError):
    """The requested model does not exist; the message lists what does."""


@dataclass(frozen=True)
class ModelSource:
    model: PetClassifier
    meta: CheckpointMeta
    description: str  # alias:champion | run:<id> | checkpoint:<path>
    mlflow_model_name: str = ""
    mlflow_version: str = ""
    mlflow_run_id: str = ""


def mlflow_client() -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri())


def _load_from_run(client: MlflowClient, run_id: str) -> tuple[PetClassifier, CheckpointMeta]:
    from mlflow.exceptions import MlflowException

    # One small file: MLflow's progress bar would only clutter the export's own summary.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory(prefix="export-ckpt-") as target:
        try:
            local = Path(client.download_artifacts(run_id, CHECKPOINT_ARTIFACT, target))
        except (MlflowException, OSError) as exc:
            raise SourceError(f"run {run_id} has no artifact {CHECKPOINT_ARTIFACT}: {exc}") from exc
        return load_checkpoint(local)


def _describe_registry(client: MlflowClient, name: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_registered_model(name)
    except MlflowException:
        names = sorted(m.name for m in client.search_registered_models())
        return f"no registered model {name!r} in {tracking_uri()}; registered models: {names or 'none'}"
    versions = sorted((int(v.version) for v in client.search_model_versions(f"name='{name}'")), reverse=True)
    aliases = {alias: str(version) for alias, version in sorted(registered.aliases.items())}
    return (
        f"registered model {name!r} has aliases {aliases or 'none'} and versions {versions or 'none'} "
        "(train with `make train`, promote with `make evaluate`, or pass --run-id / --checkpoint)"
    )


def from_alias(alias: str = CHAMPION, name: str = REGISTERED_MODEL_NAME) -> ModelSource:
    from mlflow.exceptions import MlflowException

    client = mlflow_client()
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise SourceError(f"no alias {alias!r} on {name!r}: {_describe_registry(client, name)}") from exc
    if not version.run_id:
        raise SourceError(f"{name} version {version.version} (alias {alias!r}) has no run id")
    model, meta = _load_from_run(client, version.run_id)
    return ModelSource(model, meta, f"alias:{alias}", name, str(version.version), version.run_id)


def from_run(run_id: str, name: str = REGISTERED_MODEL_NAME) -> ModelSource:
    from mlflow.exceptions import MlflowException

    client = mlflow_client()
    try:
        client.get_run(run_id)
    except MlflowException as exc:
        runs = client.search_runs(
            [e.experiment_id for e in client.search_experiments()],
            max_results=10,
            order_by=["start_time DESC"],
        )
        recent = [r.info.run_id for r in runs]
        raise SourceError(
            f"no MLflow run {run_id!r} in {tracking_uri()}; most recent runs: {recent or 'none'}"
        ) from exc
    model, meta = _load_from_run(client, run_id)
    try:
        numbers = [
            int(v.version) for v in client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
        ]
    except MlflowException:
        numbers = []
    version = str(max(numbers)) if numbers else ""
    return ModelSource(model, meta, f"run:{run_id}", name if version else "", version, run_id)


def from_checkpoint(path: Path) -> ModelSource:
    path = Path(path)
    if not path.is_file():
        near = sorted(str(p) for p in path.parent.glob("*.pt")) if path.parent.is_dir() else []
        raise SourceError(f"checkpoint {path} does not exist; .pt files in {path.parent}: {near or 'none'}")
    model, meta = load_checkpoint(path)
    return ModelSource(model, meta, f"checkpoint:{path}", "", "", meta.mlflow_run_id or "")


def resolve(
    *, alias: str | None = None, run_id: str | None = None, checkpoint: Path | None = None
) -> ModelSource:
    if checkpoint is not None:
        return from_checkpoint(checkpoint)
    if run_id is not None:
        return from_run(run_id)
    return from_alias(alias or CHAMPION)
