"""The training entry point: a real short run on synthetic data, its MLflow record and checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from training import registry
from training.checkpoint import load_checkpoint
from training.dataset import file_sha256
from training.engine import EarlyStopping
from training.train import main


@pytest.mark.slow
def test_short_training_run_reaches_90_percent_validation_accuracy(trained: Any) -> None:
    assert trained.val_metrics["accuracy"] >= 0.90, trained.history
    assert trained.val_metrics["f1_macro"] >= 0.85


@pytest.mark.slow
def test_mlflow_run_holds_params_metrics_artifacts_input_and_registered_version(trained: Any) -> None:
    import mlflow

    client = registry.get_client()
    run = client.get_run(trained.run_id)
    assert run.info.status == "FINISHED"
    for key in ("model", "lr", "epochs", "image_size", "git_sha", "manifest_sha256", "n_train"):
        assert key in run.data.params
    assert run.data.params["model"] == "simple_cnn"

    per_epoch = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    per_epoch += ("val_precision_macro", "val_recall_macro", "val_f1_macro")
    for key in per_epoch:
        history = client.get_metric_history(trained.run_id, key)
        assert [m.step for m in history] == list(range(1, len(trained.history) + 1)), key

    artifacts = {
        f.path
        for top in client.list_artifacts(trained.run_id)
        for f in client.list_artifacts(trained.run_id, top.path)
    }
    assert {
        "plots/confusion_matrix_val.png",
        "plots/training_curves.png",
        registry.CHECKPOINT_ARTIFACT,
        "data/manifest.csv",
    } <= artifacts
    assert run.inputs.dataset_inputs, "the data manifest must be logged as a run input"
    assert run.inputs.dataset_inputs[0].dataset.name == "manifest.csv"

    version = registry.version_by_alias(client, registry.CHALLENGER)
    assert version is not None
    assert version.run_id == trained.run_id
    assert str(version.version) == trained.model_version

    # The pytorch-flavour model takes the serving contract (uint8 NHWC) and matches the checkpoint.
    model = mlflow.pytorch.load_model(f"models:/{registry.REGISTERED_MODEL_NAME}@{registry.CHALLENGER}")
    info = mlflow.models.get_model_info(f"models:/{registry.REGISTERED_MODEL_NAME}@{registry.CHALLENGER}")
    spec = info.signature.inputs.inputs[0]
    assert (spec.type, spec.shape) == (np.dtype(np.uint8), (-1, 64, 64, 3))
    batch = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    reference, _ = load_checkpoint(trained.checkpoint)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(batch), reference(batch))


@pytest.mark.slow
def test_checkpoint_carries_config_git_sha_manifest_hash_and_the_best_epoch(
    trained: Any, prepared_data: Any
) -> None:
    _, meta = load_checkpoint(trained.checkpoint)
    assert trained.checkpoint.name == "last.pt"
    assert meta.config["model"] == "simple_cnn"
    assert meta.config["image_size"] == meta.image_size == 64
    assert meta.manifest_sha256 == file_sha256(prepared_data.manifest)
    assert meta.git_sha != "" and meta.mlflow_run_id == trained.run_id
    # Early stopping keeps the best-validation epoch, not the last one.
    accuracies = [h["val_accuracy"] for h in trained.history]
    assert accuracies[meta.epoch - 1] == max(accuracies)
    assert meta.val_metrics["val_accuracy"] == pytest.approx(max(accuracies))


def test_missing_preprocess_cache_fails_before_training_and_says_make_preprocess(
    prepared_data: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "--config",
            str(Path("configs/quick.yaml").resolve()),
            "--set",
            f"manifest={prepared_data.manifest}",
            "--set",
            f"cache_dir={tmp_path / 'empty-cache'}",
            "--set",
            f"output_dir={tmp_path}",
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "make preprocess" in err and "--image-size 64" in err
    assert not (tmp_path / "checkpoints").exists()


def test_missing_manifest_fails_with_ingest_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["--set", f"manifest={tmp_path / 'nope.csv'}", "--set", f"cache_dir={tmp_path}"])
    assert rc == 1
    assert "make ingest" in capsys.readouterr().err


def test_early_stopping_tracks_best_accuracy_then_lower_loss_and_stops_after_patience() -> None:
    stopper = EarlyStopping(patience=2)
    assert stopper.update(1, 0.70, 0.60)
    assert stopper.update(2, 0.80, 0.70)  # higher accuracy wins even with a higher loss
    assert not stopper.update(3, 0.80, 0.75)
    assert not stopper.should_stop
    assert stopper.update(4, 0.80, 0.50)  # same accuracy, lower loss: new best, patience resets
    assert not stopper.update(5, 0.75, 0.40)
    assert not stopper.update(6, 0.80, 0.50)  # equal, not better
    assert stopper.should_stop and stopper.best_epoch == 4


def test_early_stopping_with_zero_patience_never_stops() -> None:
    stopper = EarlyStopping(patience=0)
    stopper.update(1, 0.9, 0.1)
    for epoch in range(2, 20):
        stopper.update(epoch, 0.5, 1.0)
    assert not stopper.should_stop and stopper.best_epoch == 1
