"""Train a cats-vs-dogs classifier with MLflow tracking and registry.

    python -m training.train --config configs/train.yaml [--set key=value ...]

Reads top to bottom: config → seeds and device → model → data from the preprocess cache →
``fit`` (optimiser and schedule, epochs: train, validate, log, early-stop; the best weights back) →
``finalise`` (plots, checkpoint, MLflow model, registry alias ``challenger``). The torch work of
an epoch, prediction, early stopping and device choice live in ``training/engine.py``.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from imaging.cli import ArgumentParser
from training import registry
from training.checkpoint import CheckpointMeta, save_checkpoint
from training.config import ConfigError, TrainConfig, load_config
from training.dataset import CachedImageDataset, DataError, file_sha256, load_split
from training.engine import (
    EarlyStopping,
    predict,
    resolve_device,
    seed_everything,
    seed_worker,
    train_one_epoch,
)
from training.metrics import classification_metrics, flat_metrics, plot_confusion_matrix, plot_training_curves
from training.models import PetClassifier, PretrainedWeightsError, get_model
from training.transforms import CLASS_NAMES, MEAN, STD, TrainTransform

CHECKPOINT_NAME = "last.pt"


@dataclass
class TrainResult:
    run_id: str
    checkpoint: Path
    best_epoch: int
    val_metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    model_version: str | None = None


# --- setup --------------------------------------------------------------------------------


def git_sha() -> str:
    """The commit the code came from, with ``-dirty`` when the work tree has changes."""
    root = registry.PROJECT_ROOT
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def train_transform(cfg: TrainConfig) -> TrainTransform:
    return TrainTransform(
        image_size=cfg.image_size,
        hflip_prob=cfg.hflip_prob,
        rotation_degrees=cfg.rotation_degrees,
        crop_scale=(cfg.crop_scale_min, 1.0),
        brightness=cfg.brightness,
        contrast=cfg.contrast,
        saturation=cfg.saturation,
        noise_std=cfg.noise_std,
    )


def make_loaders(cfg: TrainConfig) -> tuple[DataLoader[Any], DataLoader[Any]]:
    manifest = Path(cfg.manifest)
    cache_dir = Path(cfg.cache_dir)
    train_set = CachedImageDataset(
        load_split(manifest, "train"), cache_dir, cfg.image_size, transform=train_transform(cfg)
    )
    # Validation sees exactly what serving sees: the cached load_for_model array, no augmentation.
    val_set = CachedImageDataset(load_split(manifest, "val"), cache_dir, cfg.image_size)
    for name, ds in (("train", train_set), ("val", val_set)):
        if len(ds) == 0:
            raise DataError(f"the {name} split of {manifest} is empty; ingest more images")
    generator = torch.Generator().manual_seed(cfg.seed)
    common: dict[str, Any] = {
        "num_workers": cfg.num_workers,
        "pin_memory": torch.cuda.is_available(),
        "persistent_workers": cfg.num_workers > 0,
        "worker_init_fn": seed_worker,
    }
    train_loader = DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=len(train_set) > cfg.batch_size,  # a 1-sample last batch upsets BatchNorm
        generator=generator,
        **common,
    )
    val_loader = DataLoader(val_set, batch_size=cfg.batch_size * 2, shuffle=False, **common)
    return train_loader, val_loader


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    # No weight decay on BatchNorm and biases: decaying them only fights the normalisation.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def make_scheduler(
    cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per batch."""
    total = cfg.epochs * steps_per_epoch
    if cfg.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=cfg.lr,
            total_steps=total,
            pct_start=min(0.3, max(0.05, cfg.warmup_epochs / cfg.epochs)),
        )
    warmup = min(int(cfg.warmup_epochs * steps_per_epoch), max(total - 1, 0))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.scheduler == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# --- MLflow helpers -------------------------------------------------------------------------


def _log_params(cfg: TrainConfig, extra: dict[str, Any]) -> None:
    import mlflow

    params = {k: v for k, v in cfg.to_dict().items() if k != "tags"}
    mlflow.log_params({**params, **extra})


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def quiet_mlflow_notices() -> None:
    """Silence exactly the three MLflow notices every run printed that a user cannot act on.

    - "dataset source can be interpreted in multiple ways": the manifest is a local file and both
      registered local-artifact sources read it the same way;
    - "Inferred schema contains integer column(s)": width/height/bytes never have missing values;
    - the pickle-format caution of ``mlflow.pytorch``: the pickled module is deliberate (dynamic
      batch, loads as a module) and the registry holds only this project's own runs.
    Anything else MLflow says still reaches the user.
    """
    warnings.filterwarnings(
        "ignore", message="The specified dataset source can be interpreted in multiple ways"
    )
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
    logging.getLogger("mlflow.pytorch").addFilter(
        _DropMessage("Saving pytorch model by Pickle or CloudPickle")
    )


def _log_manifest(manifest: Path, digest: str) -> None:
    import mlflow
    import pandas as pd
    from mlflow.data.pandas_dataset import from_pandas

    df = pd.read_csv(manifest) if manifest.suffix == ".csv" else pd.read_parquet(manifest)
    dataset = from_pandas(
        df, source=str(manifest.resolve()), targets="label", name=manifest.name, digest=digest[:16]
    )
    mlflow.log_input(dataset, context="training")
    mlflow.log_artifact(str(manifest), artifact_path="data")


def _signature(image_size: int) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, image_size, image_size, 3), "image")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, len(CLASS_NAMES)), "logits")]),
    )


def log_model(model: PetClassifier, image_size: int) -> str:
    """The pytorch flavour under ``model``; returns its URI for registration."""
    import mlflow.pytorch
    import torchvision

    info = mlflow.pytorch.log_model(
        model,
        name="model",
        # A pickled nn.Module (with code_paths) keeps the dynamic batch size and loads as a module.
        serialization_format="pickle",
        signature=_signature(image_size),
        # Given explicitly: inference would import-trace the model in a subprocess (slow).
        pip_requirements=[
            f"torch=={torch.__version__.split('+')[0]}",
            f"torchvision=={torchvision.__version__.split('+')[0]}",
        ],
        # The pickled module refers to these packages; ship them so the model loads anywhere.
        code_paths=[str(registry.PROJECT_ROOT / package) for package in ("contract", "training", "imaging")],
    )
    return str(info.model_uri)


def _register(model_uri: str, run_id: str) -> str:
    import mlflow

    client = registry.get_client()
    version = mlflow.register_model(model_uri, registry.REGISTERED_MODEL_NAME, tags={"run_id": run_id})
    registry.set_alias(client, registry.CHALLENGER, version.version)
    return str(version.version)


# --- the run --------------------------------------------------------------------------------


@dataclass
class Fitted:
    """What the epoch loop leaves: the model at its best epoch and that epoch's validation metrics."""

    best_epoch: int
    val_metrics: dict[str, Any]
    val_loss: float
    history: list[dict[str, float]]


def build_model(cfg: TrainConfig, device: torch.device) -> tuple[PetClassifier, dict[str, Any]]:
    """The classifier on ``device`` and the ``get_model`` arguments the checkpoint records."""
    model_kwargs: dict[str, Any] = {"num_classes": len(CLASS_NAMES), "dropout_rate": cfg.dropout_rate}
    if cfg.model in ("simple_cnn", "improved_cnn"):
        model_kwargs["width"] = cfg.width
    network = get_model(cfg.model, pretrained=cfg.pretrained, **model_kwargs)
    return PetClassifier(network, MEAN, STD).to(device), model_kwargs


def fit(
    cfg: TrainConfig,
    model: nn.Module,
    train_loader: DataLoader[Any],
    val_loader: DataLoader[Any],
    device: torch.device,
    use_amp: bool,
) -> Fitted:
    """The epochs (train, validate, log to the active MLflow run, early-stop), then the best weights back."""
    import mlflow

    steps_per_epoch = len(train_loader)
    if cfg.max_train_batches:
        steps_per_epoch = min(steps_per_epoch, cfg.max_train_batches)
    optimizer = make_optimizer(cfg, model)
    scheduler = make_scheduler(cfg, optimizer, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    mix_rng = np.random.default_rng(cfg.seed)

    history: list[dict[str, float]] = []
    stopper = EarlyStopping(cfg.early_stopping_patience)
    best_state: dict[str, torch.Tensor] = copy.deepcopy(model.state_dict())
    for epoch in range(1, cfg.epochs + 1):
        started = time.perf_counter()
        train_stats = train_one_epoch(
            model,
            train_loader,
            criterion,
            optimizer,
            scheduler,
            scaler,
            cfg,
            device,
            mix_rng,
            desc=f"epoch {epoch}/{cfg.epochs}",
        )
        y_true, y_pred, val_loss = predict(model, val_loader, device, use_amp, desc="val")
        val = classification_metrics(y_true, y_pred, CLASS_NAMES)
        seconds = time.perf_counter() - started

        record = {
            "epoch": float(epoch),
            "train_loss": train_stats["loss"],
            "train_accuracy": train_stats["accuracy"],
            "val_loss": val_loss,
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_seconds": seconds,
            **flat_metrics(val, "val"),
        }
        history.append(record)
        mlflow.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch)
        print(
            f"epoch {epoch:3d}/{cfg.epochs}  train loss {train_stats['loss']:.4f} "
            f"acc {train_stats['accuracy']:.3f}  val loss {val_loss:.4f} acc {val['accuracy']:.3f} "
            f"f1 {val['f1_macro']:.3f}  {seconds:.1f}s",
            flush=True,
        )

        if stopper.update(epoch, val["accuracy"], val_loss):
            best_state = copy.deepcopy(model.state_dict())
        elif stopper.should_stop:
            print(f"early stopping: no better val accuracy for {stopper.stale} epochs", flush=True)
            break

    # Keep the best epoch's weights, not the last epoch's.
    model.load_state_dict(best_state)
    y_true, y_pred, val_loss = predict(model, val_loader, device, use_amp, desc="val (best)")
    val = classification_metrics(y_true, y_pred, CLASS_NAMES)
    return Fitted(stopper.best_epoch, val, val_loss, history)


def finalise(
    cfg: TrainConfig,
    model: PetClassifier,
    fitted: Fitted,
    *,
    model_kwargs: dict[str, Any],
    run_id: str,
    sha: str,
    manifest_sha: str,
) -> tuple[Path, str | None]:
    """Into the active MLflow run: best metrics, plots, the checkpoint (also on disk), the model and its
    registration as @challenger. Returns the checkpoint path and the registered version (None without)."""
    import mlflow

    best_epoch, val = fitted.best_epoch, fitted.val_metrics
    mlflow.log_metrics(
        {
            "best_epoch": best_epoch,
            "best_val_loss": fitted.val_loss,
            **{f"best_{k}": v for k, v in flat_metrics(val, "val").items()},
        }
    )

    with tempfile.TemporaryDirectory() as tmp:
        plots = Path(tmp)
        plot_confusion_matrix(
            np.array(val["confusion_matrix"]),
            CLASS_NAMES,
            plots / "confusion_matrix_val.png",
            f"validation (epoch {best_epoch}), acc {val['accuracy']:.3f}",
        )
        plot_training_curves(fitted.history, plots / "training_curves.png")
        mlflow.log_artifacts(str(plots), artifact_path="plots")

    model = model.to("cpu").eval()
    meta = CheckpointMeta(
        model_name=cfg.model,
        model_kwargs=model_kwargs,
        class_names=list(CLASS_NAMES),
        image_size=cfg.image_size,
        mean=list(MEAN),
        std=list(STD),
        config=cfg.to_dict(),
        git_sha=sha,
        manifest_sha256=manifest_sha,
        epoch=best_epoch,
        val_metrics=flat_metrics(val, "val"),
        mlflow_run_id=run_id,
    )
    checkpoint = save_checkpoint(Path(cfg.output_dir) / "checkpoints" / CHECKPOINT_NAME, model, meta)
    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / Path(registry.CHECKPOINT_ARTIFACT).name
        named.write_bytes(checkpoint.read_bytes())
        mlflow.log_artifact(str(named), artifact_path=str(Path(registry.CHECKPOINT_ARTIFACT).parent))

    model_uri = log_model(model, cfg.image_size)
    version = _register(model_uri, run_id) if cfg.register else None
    return checkpoint, version


def train(cfg: TrainConfig) -> TrainResult:
    import mlflow

    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    use_amp = cfg.amp and device.type == "cuda"

    # The network first: missing pretrained weights fail before the data is read.
    model, model_kwargs = build_model(cfg, device)
    manifest = Path(cfg.manifest)
    train_loader, val_loader = make_loaders(cfg)
    manifest_sha = file_sha256(manifest)

    n_train, n_val = len(train_loader.dataset), len(val_loader.dataset)  # type: ignore[arg-type]
    print(
        f"training {cfg.model} at {cfg.image_size}px on {device}{' (AMP)' if use_amp else ''}: "
        f"{n_train} train / {n_val} val images, {cfg.epochs} epochs",
        flush=True,
    )

    quiet_mlflow_notices()
    registry.configure_mlflow()
    sha = git_sha()
    with mlflow.start_run(run_name=cfg.run_name or None, tags=cfg.tags or None) as run:
        run_id = run.info.run_id
        _log_params(
            cfg,
            {
                "git_sha": sha,
                "manifest_sha256": manifest_sha,
                "n_train": n_train,
                "n_val": n_val,
                "device": str(device),
            },
        )
        _log_manifest(manifest, manifest_sha)
        fitted = fit(cfg, model, train_loader, val_loader, device, use_amp)
        checkpoint, version = finalise(
            cfg, model, fitted, model_kwargs=model_kwargs, run_id=run_id, sha=sha, manifest_sha=manifest_sha
        )

    val = fitted.val_metrics
    print(
        f"best epoch {fitted.best_epoch}: val accuracy {val['accuracy']:.4f}, f1 {val['f1_macro']:.4f}\n"
        f"checkpoint: {checkpoint}\nmlflow run: {run_id}"
        + (
            f"\nregistered {registry.REGISTERED_MODEL_NAME} version {version} as @{registry.CHALLENGER}"
            if version
            else ""
        ),
        flush=True,
    )
    return TrainResult(run_id, checkpoint, fitted.best_epoch, val, fitted.history, version)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m training.train",
        description="Train the cats-vs-dogs classifier (MLflow-tracked).",
        epilog="""without --config: the TrainConfig defaults (training/config.py): simple_cnn at 224 px,
20 epochs, AdamW lr 2e-3, on data/manifest.csv and data/cache (run `make ingest preprocess`
first); the checkpoint goes to artifacts/checkpoints/last.pt and the model is registered as
@challenger.

examples:
  python -m training.train --config configs/train.yaml
  python -m training.train --config configs/quick.yaml --set epochs=2 --set lr=0.001
  python -m training.train --config params.yaml --section train""",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="YAML file of TrainConfig keys (e.g. configs/pets.yaml for real photos, configs/quick.yaml for "
        "the synthetic set); without it every key keeps its TrainConfig default",
    )
    parser.add_argument(
        "--section",
        help="read the keys from this top-level section of the YAML file (e.g. `train` in params.yaml)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key (repeatable), e.g. --set epochs=5 --set model=improved_cnn",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides, section=args.section)
        # Which recipe produced a run must be visible in its output and in MLflow (a tag).
        recipe = (
            f"{args.config}" + (f" [{args.section}]" if args.section else "") if args.config else "defaults"
        )
        cfg.tags = {**cfg.tags, "config_file": recipe}
        print(
            f"config: {recipe}" + (f" with {' '.join(args.overrides)}" if args.overrides else ""), flush=True
        )
        train(cfg)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (DataError, FileNotFoundError, PretrainedWeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: training stopped and its MLflow run is marked FAILED", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")  # mlflow probes git; a missing git is not an error
    raise SystemExit(main())
