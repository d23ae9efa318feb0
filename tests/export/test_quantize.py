"""INT8 (QDQ static) and FP16 variants keep the contract and pass their own gates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from export.check_images import LabelledImages
from export.contract import INPUT_NAME
from export.metadata import read_onnx_metadata
from export.onnx_export import export_onnx, session, verify_contract
from export.pipeline import ExportResult
from export.quantize import VariantRefusedError, convert_fp16, gate_variant, quantize_int8
from tests.export.export_helpers import IMAGE_SIZE, Models, stripes, untrained_model


def test_int8_export_of_a_small_model_passes_its_gate(exported: ExportResult) -> None:
    report = exported.variants["int8"]
    assert report.agreement >= 0.99 and report.accuracy_drop <= 0.01 and report.images == 128
    path = exported.onnx_path.with_name("model.int8.onnx")
    verify_contract(path, IMAGE_SIZE)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format
    assert read_onnx_metadata(path)["precision"] == "int8"
    assert read_onnx_metadata(path)["class_names"] == '["cat", "dog"]'


def test_fp16_variant_keeps_io_types_and_passes(tmp_path: Path, models: Models) -> None:
    fp32 = export_onnx(models.trained, IMAGE_SIZE, tmp_path / "model.onnx")
    fp16 = convert_fp16(fp32, tmp_path / "model.fp16.onnx")
    images, labels = stripes(96, seed=5)
    report = gate_variant("fp16", fp32, fp16, LabelledImages(images, labels, "stripes"))
    assert report.agreement >= 0.99
    out = session(fp16).run(None, {INPUT_NAME: images[:3]})[0]
    assert out.dtype == np.float32 and out.shape == (3, 2)
    initializers = onnx.load(str(fp16)).graph.initializer
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in initializers)


def test_variant_gate_refuses_a_disagreeing_variant(tmp_path: Path, models: Models) -> None:
    """A 'variant' that is really another model must not pass as a quantisation of this one."""
    fp32 = export_onnx(models.trained, IMAGE_SIZE, tmp_path / "model.onnx")
    other = export_onnx(untrained_model(9), IMAGE_SIZE, tmp_path / "other.onnx")
    images, labels = stripes(64, seed=6)
    with pytest.raises(VariantRefusedError, match="agreement"):
        gate_variant("int8", fp32, other, LabelledImages(images, labels, "stripes"))


def test_int8_needs_calibration_images(tmp_path: Path, models: Models) -> None:
    fp32 = export_onnx(models.trained, IMAGE_SIZE, tmp_path / "model.onnx")
    with pytest.raises(VariantRefusedError, match="calibration"):
        quantize_int8(fp32, tmp_path / "q.onnx", np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8))
