"""make rollback: the previous version is served again, in both repositories and in MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.check_images import DataLocation
from export.cpu_repository import CpuOptions
from export.pipeline import ExportRequest, run_export
from export.rollback import main
from export.source import from_alias, mlflow_client
from export.triton_config import read_config
from export.versions import VersionLog, loadable_count, version_dirs
from tests.export.export_helpers import Models, register, source
from training.registry import REGISTERED_MODEL_NAME


@pytest.mark.slow
def test_rollback_returns_to_the_previous_version(
    tmp_path: Path,
    models: Models,
    dataset: DataLocation,
    mlflow_store: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    register(models.untrained_ckpt, aliases=("champion",))
    first = from_alias("champion")
    register(models.trained_ckpt, aliases=("champion",))
    second = from_alias("champion")
    req = ExportRequest(
        repository=tmp_path / "repo",
        cpu_repository=tmp_path / "cpu",
        data=dataset,
        cpu=CpuOptions(intra_op_threads=3),
        force=True,  # the untrained v1 would fail the floor; this test is about rollback
    )
    run_export(first, req, say=lambda _: None)
    run_export(second, req, say=lambda _: None)
    args = ["--repository", str(tmp_path / "repo"), "--cpu-repository", str(tmp_path / "cpu")]
    args += ["--retired-dir", str(tmp_path / "retired")]

    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Triton version 2 retired" in out and "now served: Triton version 1 (MLflow" in out
    assert "version 2 → 1" in out
    assert "next: `make reload`" in out  # rollback only writes files; reloading is serving's job
    mdir, cpu_dir = tmp_path / "repo" / "cats_dogs", tmp_path / "cpu" / "cats_dogs"
    assert version_dirs(mdir) == [1] and version_dirs(cpu_dir) == [1]
    assert len(list((tmp_path / "retired" / "cats_dogs").iterdir())) == 1
    for config in (read_config(mdir / "config.pbtxt"), read_config(cpu_dir / "config.pbtxt")):
        assert config.parameters["triton_model_version"].string_value == "1"
        assert config.parameters["model_version_mlflow"].string_value == "1"
    assert read_config(cpu_dir / "config.pbtxt").parameters["ort_intra_op_threads"].string_value == "3"
    log = VersionLog.load(mdir)
    assert log.get(2) is not None and log.get(2).rolled_back_at is not None  # type: ignore[union-attr]
    assert str(mlflow_client().get_model_version_by_alias(REGISTERED_MODEL_NAME, "champion").version) == "1"

    # Nothing older than version 1: refused, nothing changed.
    assert main(args) == 1
    assert "only version" in capsys.readouterr().err
    assert version_dirs(mdir) == [1]
    # A new export never reuses the retired number.
    assert run_export(second, req, say=lambda _: None).version == 3


def test_rollback_of_an_empty_repository_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--repository", str(tmp_path), "--no-cpu-repository", "--no-mlflow"]) == 1
    assert "nothing to roll back" in capsys.readouterr().err


def test_rollback_restores_the_input_shape_and_leaves_alias_without_mlflow_origin(
    tmp_path: Path, models: Models, dataset: DataLocation, capsys: pytest.CaptureFixture[str]
) -> None:
    req = ExportRequest(
        repository=tmp_path / "repo", cpu_repository=tmp_path / "cpu", data=dataset, force=True
    )
    run_export(source(models.trained), req, say=lambda _: None)
    said: list[str] = []
    run_export(source(models.trained, image_size=48), req, say=said.append)
    assert any("input size changes 32 → 48px" in line for line in said)
    config_path = tmp_path / "repo" / "cats_dogs" / "config.pbtxt"
    assert list(read_config(config_path).input[0].dims) == [48, 48, 3]
    # Only the 48 px version is loaded: the 32 px one would fail the new warm-up and stop Triton.
    assert read_config(config_path).version_policy.latest.num_versions == 1
    args = ["--repository", str(tmp_path / "repo"), "--cpu-repository", str(tmp_path / "cpu")]
    assert main([*args, "--retired-dir", str(tmp_path / "r")]) == 0
    assert "left as it is" in capsys.readouterr().out
    for path in (config_path, tmp_path / "cpu" / "cats_dogs" / "config.pbtxt"):
        config = read_config(path)
        assert list(config.input[0].dims) == [32, 32, 3]
        assert list(config.model_warmup[0].inputs["image"].dims) == [32, 32, 3]
        assert config.parameters["image_size"].string_value == "32"


def test_rollback_loads_again_every_version_of_the_restored_shape(
    tmp_path: Path, models: Models, dataset: DataLocation
) -> None:
    req = ExportRequest(
        repository=tmp_path / "repo", cpu_repository=tmp_path / "cpu", data=dataset, force=True
    )
    for model, size in ((models.untrained, 32), (models.trained, 32), (models.trained, 48)):
        run_export(source(model, image_size=size), req, say=lambda _: None)
    config_path = tmp_path / "repo" / "cats_dogs" / "config.pbtxt"
    assert read_config(config_path).version_policy.latest.num_versions == 1
    args = ["--repository", str(tmp_path / "repo"), "--cpu-repository", str(tmp_path / "cpu")]
    assert main([*args, "--retired-dir", str(tmp_path / "r"), "--no-mlflow"]) == 0
    # Versions 1 and 2 both take 32 px: the export's num_versions 2 applies again.
    for path in (config_path, tmp_path / "cpu" / "cats_dogs" / "config.pbtxt"):
        assert read_config(path).version_policy.latest.num_versions == 2


def test_loadable_count_stops_at_the_first_other_size() -> None:
    assert loadable_count([48, 32, 32], 2) == 1
    assert loadable_count([32, 32, 48], 2) == 2
    assert loadable_count([32, 32, 32], 2) == 2
    assert loadable_count([32, 32, 48, 32], 5) == 2
    assert loadable_count([32, None], 2) == 1  # an unreadable version is never assumed to fit
    assert loadable_count([32], 2) == 1


def test_a_rebuild_keeps_a_given_layout_and_measures_an_auto_one_again(tmp_path: Path) -> None:
    from tritonclient.grpc import model_config_pb2 as mc

    from export.rollback import cpu_options_from
    from export.triton_config import write_config

    def config_with(layout: str | None) -> Path:
        folder = tmp_path / (layout or "given").split(":")[0]
        folder.mkdir()
        config = mc.ModelConfig(name="cats_dogs")
        config.instance_group.append(mc.ModelInstanceGroup(kind=mc.ModelInstanceGroup.KIND_CPU, count=3))
        config.parameters["ort_intra_op_threads"].string_value = "2"
        if layout is not None:
            config.parameters["cpu_layout"].string_value = layout
        write_config(config, folder / "config.pbtxt")
        return folder

    given = cpu_options_from(config_with(None))
    assert (given.instance_count, given.intra_op_threads) == (3, 2)
    auto = cpu_options_from(config_with("auto: 8.0 ms per photo on 1 thread <= 20 ms, 2 cores -> 2 x 1"))
    assert (auto.instance_count, auto.intra_op_threads) == (None, None)
