"""Fixtures for the export tests (helpers in export_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from export.check_images import DataLocation
from export.cpu_repository import CpuOptions
from export.pipeline import ExportRequest, ExportResult, run_export
from tests.export.export_helpers import Models, meta, source, trained_model, untrained_model, write_dataset
from training.checkpoint import save_checkpoint


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    root = tmp_path_factory.mktemp("checkpoints")
    trained, untrained = trained_model(), untrained_model(1)
    return Models(
        trained,
        untrained,
        save_checkpoint(root / "trained.pt", trained, meta()),
        save_checkpoint(root / "untrained.pt", untrained, meta()),
    )


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> DataLocation:
    return write_dataset(tmp_path_factory.mktemp("data"), {"train": 96, "val": 64, "test": 128})


@pytest.fixture
def no_data(tmp_path: Path) -> DataLocation:
    return DataLocation(manifest=tmp_path / "absent.csv", cache_dir=tmp_path / "absent-cache")


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private sqlite MLflow store for one test."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ARTIFACT_ROOT", (tmp_path / "mlartifacts").as_uri())
    yield uri


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory, models: Models, dataset: DataLocation) -> ExportResult:
    """One full export of the trained tiny model (with the INT8 variant) shared by read-only tests."""
    root = tmp_path_factory.mktemp("exported")
    request = ExportRequest(
        repository=root / "model_repository",
        cpu_repository=root / "model_repository_cpu",
        data=dataset,
        int8=True,
        cpu=CpuOptions(instance_count=1, intra_op_threads=1),
    )
    return run_export(source(models.trained), request, say=lambda _: None)
