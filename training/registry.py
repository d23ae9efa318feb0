"""MLflow names and look-ups shared by training, evaluation and export.

Default tracking store: ``sqlite:///mlflow.db`` in the project root with artifacts in
``mlartifacts/`` (both gitignored). ``MLFLOW_TRACKING_URI`` overrides it, e.g. a team server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from contract.paths import PROJECT_ROOT

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

REGISTERED_MODEL_NAME = "cats-dogs-classifier"
EXPERIMENT_NAME = "cats-dogs-classifier"
CHALLENGER = "challenger"
CHAMPION = "champion"
# Where each run stores its self-describing checkpoint (see training.checkpoint).
CHECKPOINT_ARTIFACT = "checkpoint/model.pt"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"


def artifact_root() -> str:
    return os.environ.get("MLFLOW_ARTIFACT_ROOT") or (PROJECT_ROOT / "mlartifacts").as_uri()


def configure_mlflow() -> None:
    """Point MLflow at the project store and make sure the experiment exists with our artifact root."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    if mlflow.get_experiment_by_name(EXPERIMENT_NAME) is None:
        mlflow.create_experiment(EXPERIMENT_NAME, artifact_location=artifact_root())
    mlflow.set_experiment(EXPERIMENT_NAME)


def get_client() -> MlflowClient:
    """A client on the project store (configures MLflow first)."""
    from mlflow import MlflowClient

    configure_mlflow()
    return MlflowClient()


def version_by_alias(client: MlflowClient, alias: str) -> ModelVersion | None:
    """The registered version behind ``alias``, or None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(REGISTERED_MODEL_NAME, alias)
    except MlflowException:
        return None


def version_for_run(client: MlflowClient, run_id: str) -> ModelVersion | None:
    """The newest registered version created from ``run_id``, if any."""
    versions = client.search_model_versions(f"name='{REGISTERED_MODEL_NAME}' and run_id='{run_id}'")
    return max(versions, key=lambda v: int(v.version), default=None)


def set_alias(client: MlflowClient, alias: str, version: str | int) -> None:
    client.set_registered_model_alias(REGISTERED_MODEL_NAME, alias, str(version))


def download_checkpoint(run_id: str | None, dst_dir: Path) -> Path:
    """The run's self-describing checkpoint (``CHECKPOINT_ARTIFACT``) as a local file."""
    import mlflow

    if not run_id:
        raise ValueError("this model version has no MLflow run, so it has no checkpoint artifact")

    dst_dir.mkdir(parents=True, exist_ok=True)
    local = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=CHECKPOINT_ARTIFACT, dst_path=str(dst_dir)
    )
    return Path(local)
