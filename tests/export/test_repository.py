"""export.repository: the one writer of a repository version (export, test fixtures, benchmarks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.contract import CONFIG_FILENAME, LABELS_FILENAME, MODEL_NAME, ONNX_FILENAME
from export.cpu_repository import CpuOptions
from export.metadata import ModelFacts, read_onnx_metadata
from export.repository import write_model_file, write_repository_version
from export.triton_config import ServingOptions, read_config
from export.versions import VersionLog, VersionRecord, version_dirs
from tests.export.export_helpers import IMAGE_SIZE, untrained_model
from training.transforms import CLASS_NAMES, MEAN, STD


def _facts(version: int) -> ModelFacts:
    return ModelFacts(
        class_names=CLASS_NAMES, image_size=IMAGE_SIZE, mean=MEAN, std=STD, architecture="simple_cnn",
        mlflow_model_name="unit", model_version_mlflow=str(10 + version), triton_model_version=version,
    )  # fmt: skip


def _staged(tmp_path: Path, version: int) -> Path:
    staged = tmp_path / f"staged-{version}"
    staged.mkdir()
    write_model_file(untrained_model(version), _facts(version), staged / ONNX_FILENAME)
    return staged


def test_two_versions_land_with_config_labels_log_and_the_cpu_repository(tmp_path: Path) -> None:
    repository, cpu = tmp_path / "repo", tmp_path / "cpu"
    serving = ServingOptions(max_batch_size=4, preferred_batch_sizes=(2, 4))
    for version in (1, 2):
        staged = _staged(tmp_path, version)
        written = write_repository_version(
            staged, _facts(version), repository, VersionRecord(triton_version=version, source="unit"),
            cpu_repository=cpu, serving=serving, cpu=CpuOptions(intra_op_threads=1),
            parameters={"extra": "yes"}, say=lambda _: None,
        )  # fmt: skip
        assert not staged.exists()  # moved into place, not copied
    mdir = repository / MODEL_NAME
    assert written.version_dir == mdir / "2" and written.cpu_model_dir == cpu / MODEL_NAME
    assert version_dirs(mdir) == [1, 2] == version_dirs(cpu / MODEL_NAME)
    assert read_onnx_metadata(mdir / "2" / ONNX_FILENAME)["triton_model_version"] == "2"
    config = read_config(mdir / CONFIG_FILENAME)
    assert config.max_batch_size == 4 and config.version_policy.latest.num_versions == 2
    assert config.parameters["model_version_mlflow"].string_value == "12"  # the newest version's facts
    assert config.parameters["extra"].string_value == "yes"
    assert (mdir / LABELS_FILENAME).read_text().split() == list(CLASS_NAMES)
    log = VersionLog.load(mdir)
    assert [r.triton_version for r in log.records] == [1, 2] and log.num_versions == 2


def test_a_record_of_another_version_is_refused_before_anything_moves(tmp_path: Path) -> None:
    staged = _staged(tmp_path, 1)
    with pytest.raises(ValueError, match="record of version 2"):
        write_repository_version(
            staged, _facts(1), tmp_path / "repo", VersionRecord(triton_version=2), say=lambda _: None
        )
    assert staged.is_dir() and not (tmp_path / "repo" / MODEL_NAME).exists()
