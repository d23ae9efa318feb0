"""`python -m export --cpu-variant auto` (the default): the CPU repository serves INT8 only when the
INT8 variant passed its gate on the labelled test split; FP32 otherwise, and a refused or ungated
INT8 file is not left where a later config could serve it."""

from __future__ import annotations

from pathlib import Path

import pytest

from export import quantize
from export.check_images import DataLocation
from export.cli import build_parser
from export.cpu_repository import CpuOptions
from export.onnx_export import export_onnx
from export.pipeline import ExportRequest, ExportResult, run_export
from export.triton_config import read_config
from export.versions import VersionLog
from tests.export.export_helpers import IMAGE_SIZE, Models, source, untrained_model


def _export(root: Path, models: Models, data: DataLocation, said: list[str]) -> ExportResult:
    request = ExportRequest(
        repository=root / "repo",
        cpu_repository=root / "cpu",
        data=data,
        cpu=CpuOptions(intra_op_threads=1, variant="auto"),
        force=True,
    )
    return run_export(source(models.trained), request, say=said.append)


def _cpu_parameters(root: Path) -> dict[str, str]:
    config = read_config(root / "cpu" / "cats_dogs" / "config.pbtxt")
    return {key: value.string_value for key, value in config.parameters.items()}


def test_the_cli_default_is_auto() -> None:
    assert build_parser().parse_args([]).cpu_variant == "auto"


def test_auto_serves_int8_when_its_gate_passes(tmp_path: Path, models: Models, dataset: DataLocation) -> None:
    said: list[str] = []
    result = _export(tmp_path, models, dataset, said)

    assert quantize.gate_failure(result.variants["int8"]) is None
    assert result.variants["int8"].source.startswith("test")
    params = _cpu_parameters(tmp_path)
    assert (params["precision"], params["onnx_model_filename"]) == ("int8", "model.int8.onnx")
    assert (result.model_dir / str(result.version) / "model.int8.onnx").is_file()
    assert any("serves INT8" in line for line in said)


def test_auto_serves_fp32_when_int8_fails_its_gate(
    tmp_path: Path, models: Models, dataset: DataLocation, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A quantiser that returns another model: the gate must see the disagreement and keep FP32.
    def wrong_quantiser(fp32_path: Path, out_path: Path, calibration: object) -> Path:
        return export_onnx(untrained_model(9), IMAGE_SIZE, out_path)

    monkeypatch.setattr(quantize, "quantize_int8", wrong_quantiser)
    said: list[str] = []
    result = _export(tmp_path, models, dataset, said)

    assert quantize.gate_failure(result.variants["int8"]) is not None
    params = _cpu_parameters(tmp_path)
    assert (params["precision"], params["onnx_model_filename"]) == ("fp32", "model.onnx")
    assert not (result.model_dir / str(result.version) / "model.int8.onnx").exists()
    record = VersionLog.load(result.model_dir).records[-1]
    assert record.variants["int8"]["file"] is None
    assert any("serves FP32: the INT8 variant failed its gate" in line for line in said)


def test_auto_without_a_test_split_serves_fp32(tmp_path: Path, models: Models, no_data: DataLocation) -> None:
    said: list[str] = []
    result = _export(tmp_path, models, no_data, said)

    assert _cpu_parameters(tmp_path)["precision"] == "fp32"
    assert not (result.model_dir / str(result.version) / "model.int8.onnx").exists()
    assert any("no labelled test split" in line for line in said)
