"""Checkpoints that carry their own config, so a file alone can rebuild, evaluate and export a model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from training.models import PetClassifier, get_model

FORMAT_VERSION = 1


@dataclass(kw_only=True)
class CheckpointMeta:
    model_name: str
    model_kwargs: dict[str, Any]  # passed to get_model besides the name (num_classes, dropout_rate, width)
    class_names: list[str]
    image_size: int
    mean: list[float]
    std: list[float]
    config: dict[str, Any] = field(default_factory=dict)  # the whole training config
    git_sha: str = "unknown"
    manifest_sha256: str = "unknown"
    epoch: int = 0
    val_metrics: dict[str, float] = field(default_factory=dict)
    mlflow_run_id: str | None = None


def save_checkpoint(path: Path, model: PetClassifier, meta: CheckpointMeta) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    payload = {"format_version": FORMAT_VERSION, "model_state": model.network.state_dict(), **asdict(meta)}
    torch.save(payload, tmp)
    tmp.replace(path)  # a crash mid-save never leaves a half-written checkpoint behind
    return path


def load_checkpoint(path: Path) -> tuple[PetClassifier, CheckpointMeta]:
    """The model (eval mode, CPU) and its metadata."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    version = payload.pop("format_version", None)
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {version!r}, expected {FORMAT_VERSION}")
    state = payload.pop("model_state")
    meta = CheckpointMeta(**payload)
    network = get_model(meta.model_name, **meta.model_kwargs)
    network.load_state_dict(state)
    model = PetClassifier(network, tuple(meta.mean), tuple(meta.std))
    model.eval()
    return model, meta
