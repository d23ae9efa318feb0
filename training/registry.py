"""MLflow names and look-ups shared by training, evaluation and export.

Default tracking store: ``sqlite:///mlflow.db`` in the project root with artifacts in
``mlartifacts/`` (both gitignored). ``MLFLOW_TRACKING_URI`` overrides it, e.g. a team server.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
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
