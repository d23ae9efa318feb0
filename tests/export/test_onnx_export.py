"""The exported graph is the serving contract: names, dtypes, dynamic batch, metadata, checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from export.cli import main
from export.contract import BATCH_DIM_NAME, INPUT_NAME, OUTPUT_NAME
from export.metadata import ModelFacts, read_onnx_metadata
from export.onnx_export import ExportError, ProbabilityModel, export_onnx, session, verify_contract
from export.pipeline import ExportResult
from tests.export.export_helpers import IMAGE_SIZE, untrained_model


def _io(path: Path) -> tuple[onnx.ValueInfoProto, onnx.ValueInfoProto]:
    model = onnx.load(str(path))
    assert len(model.graph.input) == 1 and len(model.graph.output) == 1
    return model.graph.input[0], model.graph.output[0]


def test_names_dtypes_and_dynamic_batch_axis(exported: ExportResult) -> None:
    image, probs = _io(exported.onnx_path)
    assert (image.name, probs.name) == (INPUT_NAME, OUTPUT_NAME)
    assert image.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert probs.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    in_dims = [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim]
    out_dims = [d.dim_param or d.dim_value for d in probs.type.tensor_type.shape.dim]
    assert in_dims == [BATCH_DIM_NAME, IMAGE_SIZE, IMAGE_SIZE, 3]
    assert out_dims == [BATCH_DIM_NAME, 2]
    assert max(op.version for op in onnx.load(str(exported.onnx_path)).opset_import if op.domain == "") >= 17
    onnx.checker.check_model(str(exported.onnx_path), full_check=True)


def test_runs_any_batch_size_and_outputs_probabilities(exported: ExportResult) -> None:
    sess = session(exported.onnx_path)
    for n in (1, 5, 64):
        x = np.random.default_rng(n).integers(0, 256, (n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        probs = sess.run(None, {INPUT_NAME: x})[0]
        assert probs.shape == (n, 2) and probs.dtype == np.float32
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_metadata_carries_the_contract(exported: ExportResult) -> None:
    props = read_onnx_metadata(exported.onnx_path)
    facts = ModelFacts.from_strings(props)  # every key present and parseable
    assert json.loads(props["class_names"]) == ["cat", "dog"]
    assert facts.image_size == IMAGE_SIZE
    assert facts.mean == pytest.approx((0.485, 0.456, 0.406)) and facts.std == pytest.approx(
        (0.229, 0.224, 0.225)
    )
    assert (facts.git_sha, facts.manifest_sha256) == ("0123abcd", "feedbeef")
    assert facts.triton_model_version == exported.version
    labels = (exported.model_dir / "labels.txt").read_text().splitlines()
    assert labels == ["cat", "dog"]


def test_normalisation_is_inside_the_graph(exported: ExportResult) -> None:
    """Feeding raw uint8 gives the PyTorch model's probabilities: the client never normalises."""
    model = untrained_model(3)
    path = export_onnx(model, IMAGE_SIZE, exported.onnx_path.parent.parent.parent / "norm_check.onnx")
    x = np.full((2, IMAGE_SIZE, IMAGE_SIZE, 3), 200, dtype=np.uint8)
    with torch.inference_mode():
        expected = ProbabilityModel(model)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session(path).run(None, {INPUT_NAME: x})[0], expected, atol=1e-5)
    path.unlink()


def _static_batch_onnx(path: Path) -> Path:
    """What the old exporter gives without dynamic axes: a graph fixed to batch 1."""
    wrapper = ProbabilityModel(untrained_model()).eval()
    example = torch.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=torch.uint8)
    torch.onnx.export(
        wrapper, (example,), str(path), dynamo=False, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME]
    )
    return path


def test_onnx_without_dynamic_batch_axis_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _static_batch_onnx(tmp_path / "static.onnx")
    with pytest.raises(ExportError, match="fixed batch axis"):
        verify_contract(path)
    assert main(["--check", str(path)]) == 1
    assert "fixed batch axis" in capsys.readouterr().err


def test_check_accepts_the_exported_model(exported: ExportResult, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check", str(exported.onnx_path)]) == 0
    assert "meets the serving contract" in capsys.readouterr().out


def test_wrong_tensor_names_are_refused(tmp_path: Path) -> None:
    wrapper = ProbabilityModel(untrained_model()).eval()
    example = torch.zeros((2, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=torch.uint8)
    path = tmp_path / "names.onnx"
    torch.onnx.export(
        wrapper,
        (example,),
        str(path),
        dynamo=False,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}},
    )
    with pytest.raises(ExportError, match="expected \\['image'\\]"):
        verify_contract(path)
