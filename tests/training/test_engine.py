"""The training engine on its own: prediction over a loader, device choice, and who imports it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from training.config import ConfigError
from training.engine import predict, resolve_device

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_predict_returns_labels_argmax_and_the_mean_cross_entropy_over_uneven_batches() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    images, labels = torch.randn(7, 3, 2, 2), torch.tensor([0, 1, 1, 0, 1, 0, 0])
    loader = DataLoader(TensorDataset(images, labels), batch_size=3)  # batches of 3, 3, 1

    y_true, y_pred, loss = predict(model, loader, torch.device("cpu"))

    with torch.no_grad():
        logits = model(images)
    assert y_true.tolist() == labels.tolist()
    assert y_pred.tolist() == logits.argmax(1).tolist()
    assert loss == pytest.approx(float(nn.functional.cross_entropy(logits, labels)), rel=1e-6)
    assert not model.training  # evaluation mode: dropout and BatchNorm statistics frozen


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA answers")
def test_device_choice_without_cuda() -> None:
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")


def test_evaluation_uses_the_engine_not_the_training_script() -> None:
    code = "import sys, training.evaluate; print('training.train' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
