"""The training engine: seeds, device choice, one training epoch, prediction over a loader, early stopping.

Plain torch, no MLflow and no files: ``training/train.py`` (the training script) and
``training/evaluate.py`` (the test-split evaluation) both drive a model through these functions, so
the evaluation measures a model exactly as validation did during training.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from training.config import ConfigError, TrainConfig
from training.transforms import mix_batch

# --- seeds and device -----------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` for a DataLoader: the per-worker torch seed passed on to numpy and random."""
    # torch seeds each worker differently; numpy and random need the same treatment.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} requested but CUDA is not available (use device=auto or cpu)")
    return device


# --- one epoch ------------------------------------------------------------------------------


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader[Any],
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    cfg: TrainConfig,
    device: torch.device,
    mix_rng: np.random.Generator,
    desc: str,
) -> dict[str, float]:
    model.train()
    use_amp = scaler.is_enabled()
    total_loss, correct, seen = 0.0, 0, 0
    mixing = cfg.mixup_alpha > 0 or cfg.cutmix_alpha > 0
    bar = tqdm(loader, desc=desc, leave=False, disable=None, dynamic_ncols=True)
    for step, (images, labels) in enumerate(bar):
        if cfg.max_train_batches and step >= cfg.max_train_batches:
            break
        if mixing and mix_rng.random() < cfg.mix_prob:
            mixed = mix_batch(
                images, labels, mixup_alpha=cfg.mixup_alpha, cutmix_alpha=cfg.cutmix_alpha, generator=mix_rng
            )
        else:
            mixed = mix_batch(images, labels, generator=mix_rng)  # identity
        x = mixed.images.to(device, non_blocking=True)
        y_a = mixed.labels_a.to(device, non_blocking=True)
        y_b = mixed.labels_b.to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            logits = model(x)
            loss = mixed.lam * criterion(logits, y_a) + (1.0 - mixed.lam) * criterion(logits, y_b)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip_norm > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()

        n = labels.shape[0]
        total_loss += float(loss.detach()) * n
        # Against the dominant label of a mixed batch: a trend indicator, val accuracy is the real one.
        dominant = y_a if mixed.lam >= 0.5 else y_b
        correct += int((logits.detach().argmax(1) == dominant).sum())
        seen += n
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}")
    return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1)}


# --- prediction -----------------------------------------------------------------------------


@torch.no_grad()
def predict(
    model: nn.Module, loader: DataLoader[Any], device: torch.device, use_amp: bool = False, desc: str = "eval"
) -> tuple[np.ndarray, np.ndarray, float]:
    """Labels, predicted labels and the mean (un-smoothed) cross-entropy over a loader."""
    model.eval()
    ys, preds, loss_sum = [], [], 0.0
    ce = nn.CrossEntropyLoss(reduction="sum")
    for images, labels in tqdm(loader, desc=desc, leave=False, disable=None, dynamic_ncols=True):
        x = images.to(device, non_blocking=True)
        y = labels.to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            logits = model(x)
        loss_sum += float(ce(logits.float(), y))
        ys.append(labels.numpy())
        preds.append(logits.argmax(1).cpu().numpy())
    y_true, y_pred = np.concatenate(ys), np.concatenate(preds)
    return y_true, y_pred, loss_sum / max(len(y_true), 1)


# --- early stopping -------------------------------------------------------------------------


class EarlyStopping:
    """Tracks the best epoch by val accuracy (ties: lower val loss) and when patience runs out."""

    def __init__(self, patience: int, loss_min_delta: float = 1e-4) -> None:
        self.patience = patience  # 0 never stops
        self.loss_min_delta = loss_min_delta
        self.best_accuracy, self.best_loss = -1.0, math.inf
        self.best_epoch, self.stale = 0, 0

    def update(self, epoch: int, accuracy: float, loss: float) -> bool:
        """Record one epoch; True when it is the new best."""
        better = accuracy > self.best_accuracy or (
            accuracy == self.best_accuracy and loss < self.best_loss - self.loss_min_delta
        )
        if better:
            self.best_accuracy, self.best_loss, self.best_epoch, self.stale = accuracy, loss, epoch, 0
        else:
            self.stale += 1
        return better

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.stale >= self.patience
