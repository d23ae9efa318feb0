"""Selecting the model to export: alias, run id, checkpoint — and clear errors listing what exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.cli import main
from export.source import SourceError, from_alias, from_checkpoint, from_run
from tests.export.export_helpers import Models, register


def test_missing_checkpoint_lists_what_exists(models: Models) -> None:
    with pytest.raises(SourceError) as err:
        from_checkpoint(models.trained_ckpt.with_name("nope.pt"))
    assert "trained.pt" in str(err.value) and "untrained.pt" in str(err.value)


@pytest.mark.slow
def test_missing_alias_lists_aliases_and_versions(models: Models, mlflow_store: str) -> None:
    register(models.untrained_ckpt)
    register(models.trained_ckpt, aliases=("challenger",))
    with pytest.raises(SourceError) as err:
        from_alias("champion")
    message = str(err.value)
    assert "'champion'" in message and "'challenger': '2'" in message and "[2, 1]" in message


@pytest.mark.slow
def test_missing_registered_model_is_named(mlflow_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--alias", "champion", "--no-cpu-repository"]) == 2
    err = capsys.readouterr().err
    assert "no registered model 'cats-dogs-classifier'" in err and "registered models: none" in err


@pytest.mark.slow
def test_alias_and_run_resolve_to_the_registered_checkpoint(models: Models, mlflow_store: str) -> None:
    version = register(models.trained_ckpt, aliases=("champion",), metrics={"test_accuracy": 0.97})
    by_alias = from_alias("champion")
    assert (by_alias.mlflow_version, by_alias.description) == (version, "alias:champion")
    by_run = from_run(by_alias.mlflow_run_id)
    assert by_run.mlflow_version == version
    state = by_alias.model.state_dict()
    for key, value in models.trained.state_dict().items():
        assert (state[key] == value).all(), key
    with pytest.raises(SourceError, match="no MLflow run 'deadbeef'"):
        from_run("deadbeef")


def test_cli_check_rejects_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A user error (no such file) exits 2, like every CLI's usage errors; a contract breach exits 1.
    assert main(["--check", str(tmp_path / "absent.onnx")]) == 2
    assert "absent.onnx" in capsys.readouterr().err
