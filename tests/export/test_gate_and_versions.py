"""Promotion gate, version numbering and the Triton ↔ MLflow mapping; failures write nothing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from export import gate
from export.check_images import DataLocation, LabelledImages
from export.cli import default_min_accuracy, main
from export.contract import DEFAULT_MIN_ACCURACY
from export.cpu_repository import CpuOptions
from export.pipeline import ExportRequest, run_export
from export.triton_config import read_config
from export.versions import VersionLog, version_dirs
from imaging import load_for_model
from tests.export.export_helpers import (
    Models,
    ingest_and_preprocess,
    register,
    source,
    train_on,
    write_new_photos,
)
from training.transforms import CLASS_NAMES


def _request(root: Path, data: DataLocation, **kw: object) -> ExportRequest:
    return ExportRequest(
        repository=root / "repo",
        cpu_repository=root / "cpu",
        data=data,
        cpu=CpuOptions(intra_op_threads=1),
        **kw,  # type: ignore[arg-type]
    )


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_decide_branches() -> None:
    good = gate.Metrics(0.95, 0.95, 100, "onnx-test-split")
    same = "both measured now on the same 100 test images"
    assert gate.decide(good, min_accuracy=0.8, served=None).passed
    assert gate.decide(good, min_accuracy=0.8, served=gate.Served(1, 0.95, same)).passed
    below_floor = gate.decide(good, min_accuracy=0.96, served=None)
    assert not below_floor.passed and "below the floor" in below_floor.summary()
    worse = gate.decide(good, min_accuracy=0.8, served=gate.Served(3, 0.97, same))
    assert not worse.passed and f"below the served version 3's 0.9700 ({same})" in worse.summary()
    unmeasured = gate.decide(good, min_accuracy=0.8, served=gate.Served(2, None, "no images"))
    assert not unmeasured.passed and "cannot compare with served version 2: no images" in unmeasured.summary()
    none = gate.decide(None, min_accuracy=0.8, served=None)
    assert not none.passed and "no test metrics" in none.summary()


def test_f1_macro() -> None:
    labels = np.array([0, 0, 1, 1])
    assert gate.f1_macro(labels, labels, 2) == 1.0
    assert gate.f1_macro(labels, np.array([0, 0, 0, 0]), 2) == pytest.approx((2 / 3 + 0) / 2)


def test_versions_increment_and_map_to_mlflow(tmp_path: Path, models: Models, dataset: DataLocation) -> None:
    req = _request(tmp_path, dataset)
    first = run_export(source(models.trained), req, say=lambda _: None)
    second = run_export(
        source(models.trained, "alias:champion"),
        req,
        say=lambda _: None,
    )
    assert (first.version, second.version) == (1, 2)
    assert version_dirs(req.repository / "cats_dogs") == [1, 2]
    assert version_dirs(tmp_path / "cpu" / "cats_dogs") == [1, 2]
    log = VersionLog.load(req.repository / "cats_dogs")
    assert [r.triton_version for r in log.records] == [1, 2]
    assert log.records[1].source == "alias:champion" and log.records[1].metrics_source == "onnx-test-split"
    assert (
        log.records[1].test_metrics["test_accuracy"] >= 0.9
        and log.records[1].test_metrics["test_images"] == 128
    )
    config = read_config(req.repository / "cats_dogs" / "config.pbtxt")
    assert config.parameters["triton_model_version"].string_value == "2"
    # The drift reference reaches the gateway through the config: it must be version 2's baseline.
    drift = json.loads(config.parameters["drift_baseline"].string_value)
    baseline = json.loads((req.repository / "cats_dogs" / "2" / "baseline_stats.json").read_text())
    assert drift["predicted_ratio"] == baseline["predicted_ratio"]
    assert drift["brightness"]["fractions"] == baseline["brightness"]["fractions"]
    assert drift["confidence"]["mean"] == baseline["confidence"]["mean"]


def test_gate_refuses_a_worse_model_and_writes_nothing(
    tmp_path: Path, models: Models, dataset: DataLocation
) -> None:
    req = _request(tmp_path, dataset)
    run_export(source(models.trained), req, say=lambda _: None)
    before = _snapshot(tmp_path)
    with pytest.raises(gate.GateRefusedError, match="below the floor"):
        run_export(source(models.untrained), req, say=lambda _: None)
    # Even with a floor of 0 it is refused: it is worse than the served version.
    with pytest.raises(gate.GateRefusedError, match="below the served version 1"):
        run_export(
            source(models.untrained), _request(tmp_path, dataset, min_accuracy=0.0), say=lambda _: None
        )
    assert _snapshot(tmp_path) == before
    assert not list(tmp_path.glob(".export-staging-*"))
    forced = run_export(source(models.untrained), _request(tmp_path, dataset, force=True), say=lambda _: None)
    assert forced.version == 2 and VersionLog.load(req.repository / "cats_dogs").records[1].forced


@pytest.mark.slow
def test_cli_gate_exit_code_and_mlflow_fallback(
    tmp_path: Path, models: Models, mlflow_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """No cached test split: the gate falls back to the run's logged test_accuracy, via the CLI."""
    register(models.untrained_ckpt, aliases=("champion",), metrics={"test_accuracy": 0.55})
    args = ["--repository", str(tmp_path / "repo"), "--cpu-repository", str(tmp_path / "cpu")]
    args += ["--manifest", str(tmp_path / "none.csv"), "--cache-dir", str(tmp_path / "none")]
    args += ["--artifact-dir", str(tmp_path / "artifacts" / "export")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "test accuracy 0.5500 is below the floor 0.8000" in err and "nothing was written" in err
    assert not (tmp_path / "repo" / "cats_dogs").exists() and not (tmp_path / "cpu").exists()
    assert not (tmp_path / "artifacts" / "export").exists()
    assert main([*args, "--min-accuracy", "0.5"]) == 0
    record = VersionLog.load(tmp_path / "repo" / "cats_dogs").records[0]
    assert (record.mlflow_version, record.metrics_source) == ("1", "mlflow-run")
    assert record.test_metrics["test_accuracy"] == 0.55
    # The DVC output: the same bytes at a fixed path, with the mapping beside them.
    artifacts = tmp_path / "artifacts" / "export"
    onnx_bytes = (tmp_path / "repo" / "cats_dogs" / "1" / "model.onnx").read_bytes()
    assert (artifacts / "model.onnx").read_bytes() == onnx_bytes
    assert json.loads((artifacts / "export.json").read_text())["triton_version"] == 1
    # The same champion again: already served, nothing written (a duplicate would push v-1 out).
    capsys.readouterr()
    (artifacts / "model.onnx").unlink()  # as `dvc repro` does to a stage's outputs before running it
    assert main([*args, "--min-accuracy", "0.5"]) == 0
    assert (artifacts / "model.onnx").read_bytes() == onnx_bytes
    assert "already served as Triton version 1" in capsys.readouterr().out
    assert version_dirs(tmp_path / "repo" / "cats_dogs") == [1]


def test_no_metrics_at_all_is_refused_unless_forced(
    tmp_path: Path, models: Models, no_data: DataLocation
) -> None:
    with pytest.raises(gate.GateRefusedError, match="no test metrics"):
        run_export(source(models.trained), _request(tmp_path, no_data), say=lambda _: None)
    result = run_export(source(models.trained), _request(tmp_path, no_data, force=True), say=lambda _: None)
    assert result.version == 1 and not result.decision.passed


def test_floor_comes_from_params_yaml(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  epochs: 3\nexport:\n  min_accuracy: 0.9\n")
    assert default_min_accuracy(params) == 0.9
    params.write_text("train:\n  epochs: 3\n")
    assert default_min_accuracy(params) == DEFAULT_MIN_ACCURACY


def test_a_failed_parity_check_writes_nothing(
    tmp_path: Path, models: Models, dataset: DataLocation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Error handling only (the real parity failure is in test_parity.py): the staging is discarded."""
    from export import pipeline
    from export.parity import ParityError

    req = _request(tmp_path, dataset)
    run_export(source(models.trained), req, say=lambda _: None)
    before = _snapshot(tmp_path)

    def disagree(*_: object, **__: object) -> None:
        raise ParityError("max |Δp| = 3e-02")

    monkeypatch.setattr(pipeline, "check_parity", disagree)
    with pytest.raises(ParityError):
        run_export(source(models.trained), req, say=lambda _: None)
    assert _snapshot(tmp_path) == before and not list(tmp_path.glob(".export-staging-*"))


@pytest.mark.slow
def test_the_gate_measures_the_served_version_again_on_the_new_test_images(
    tmp_path: Path, models: Models, dataset: DataLocation
) -> None:
    """A retrain on new photos at another size: both models are measured on the new test split."""
    first = run_export(source(models.trained), _request(tmp_path, dataset), say=lambda _: None)
    assert first.decision.metrics is not None
    recorded = first.decision.metrics.accuracy  # version 1 on its own (old) test split
    new_data = ingest_and_preprocess(write_new_photos(tmp_path / "photos", 240), tmp_path / "new", 48)
    candidate = source(train_on(new_data, 48), image_size=48)
    req = _request(tmp_path, new_data, min_accuracy=0.5)

    # Version 1 takes 32 px: the new photos are cached at 48 px only, so it reads the source files.
    rows = [r for r in csv.DictReader(new_data.manifest.open()) if r["split"] == "test"]
    images = np.stack([load_for_model(Path(r["path"]).read_bytes(), 32) for r in rows])
    labels = np.array([CLASS_NAMES.index(r["label"]) for r in rows])
    served_on_new = gate.measure(first.onnx_path, LabelledImages(images, labels, "new photos at 32 px"))

    # Without those files there is no like-for-like figure: refused, not compared with another data set's.
    hidden = Path(rows[0]["path"])
    hidden.rename(tmp_path / "hidden.png")
    with pytest.raises(gate.GateRefusedError, match=r"cannot compare with served version 1: .*source file"):
        run_export(candidate, req, say=lambda _: None)
    (tmp_path / "hidden.png").rename(hidden)

    said: list[str] = []
    second = run_export(candidate, req, say=said.append)
    assert second.decision.metrics is not None
    accuracy = second.decision.metrics.accuracy
    # The case of the issue: version 1's own figure would refuse the candidate; on the same photos
    # version 1 is far worse.
    assert served_on_new.accuracy < 0.5 <= accuracy < recorded
    expected = (
        f"not worse than served version 1 ({served_on_new.accuracy:.4f}; both measured now on the same "
        f"{len(rows)} test images, it at its own 32px)"
    )
    assert any(line.startswith("gate passed") and expected in line for line in said), said
