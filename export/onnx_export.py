"""PyTorch classifier → ONNX graph that takes the uint8 photo contract and returns probabilities.

The graph: ``image: uint8 [N, S, S, 3]`` RGB → (InputNormalization from training.transforms:
float, /255, mean/std, NHWC→NCHW) → network → softmax → ``probabilities: float32 [N, 2]``.

Graph optimisation: the file on disk is optimised offline by ONNX Runtime at ENABLE_BASIC
(constant folding, redundant-node removal: portable across execution providers), and every
session that runs it — the parity gate, Triton's onnxruntime backend (its default) and our
python-backend model — applies ENABLE_ALL at load time. ENABLE_ALL cannot be baked into the
file: its layout transforms (NCHWc) are specific to the CPU that ran them, and ORT warns the
result "should only be used in the same environment", which rules it out for a GPU server.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from contract.model import BATCH_DIM_NAME, INPUT_NAME, OUTPUT_NAME
from export.contract import OPSET


class ExportError(RuntimeError):
    """The model cannot be exported as the serving contract requires; nothing was written."""


class ProbabilityModel(nn.Module):
    """The exported module: uint8 NHWC in, softmax probabilities out."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.classifier(image), dim=1)


def export_onnx(classifier: nn.Module, image_size: int, path: Path, *, opset: int = OPSET) -> Path:
    """Export with the dynamo exporter, check it fully, optimise it portably and verify the contract."""
    if opset < 17:
        raise ExportError(f"opset {opset} is too old; the contract needs opset >= 17")
    wrapper = ProbabilityModel(classifier).eval()
    # Batch 2 as the example: a batch of 1 invites the tracer to specialise the batch axis away.
    example = torch.zeros((2, image_size, image_size, 3), dtype=torch.uint8)
    raw = path.with_name(path.stem + ".raw.onnx")
    batch = torch.export.Dim(BATCH_DIM_NAME, min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _quiet_exporter_logs()
        program = torch.onnx.export(
            wrapper,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"image": {0: batch}},
            opset_version=opset,
            verbose=False,
        )
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    program.save(str(raw))
    try:
        check_full(raw)
        optimise_portable(raw, path)
    finally:
        raw.unlink(missing_ok=True)
    check_full(path)
    verify_contract(path, image_size)
    return path


def _quiet_exporter_logs() -> None:
    # The dynamo exporter prints progress lines through these loggers; the CLI prints its own summary.
    for name in ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)


def check_full(path: Path) -> None:
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{path}: onnx.checker full check failed: {exc}") from exc


def optimise_portable(src: Path, dst: Path) -> None:
    """Write ORT's EP-independent (BASIC) optimisation of ``src`` to ``dst``; see the module docstring."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
    if not dst.is_file():
        raise ExportError(f"ONNX Runtime did not write the optimised model to {dst}")


def session(path: Path | bytes, *, threads: int = 0) -> ort.InferenceSession:
    """A CPU session with ENABLE_ALL, as the served model runs."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    source = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param if d.dim_param else d.dim_value for d in value_info.type.tensor_type.shape.dim]


def verify_contract(path: Path, image_size: int | None = None) -> None:
    """Refuse any ONNX file that is not the serving contract: names, dtypes, shapes, dynamic batch.

    A fixed batch axis is the failure that slips through every single-image test and only
    shows under dynamic batching, so it is checked on the file and by running two batch sizes.
    """
    model = onnx.load(str(path), load_external_data=False)
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    problems: list[str] = []
    if [i.name for i in inputs] != [INPUT_NAME]:
        problems.append(f"inputs are {[i.name for i in inputs]}, expected [{INPUT_NAME!r}]")
    if [o.name for o in model.graph.output] != [OUTPUT_NAME]:
        problems.append(f"outputs are {[o.name for o in model.graph.output]}, expected [{OUTPUT_NAME!r}]")
    if problems:
        raise ExportError(f"{path}: " + "; ".join(problems))
    image, probs = inputs[0], model.graph.output[0]
    if image.type.tensor_type.elem_type != onnx.TensorProto.UINT8:
        problems.append(f"{INPUT_NAME} must be UINT8, is {_type_name(image)}")
    if probs.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        problems.append(f"{OUTPUT_NAME} must be FP32, is {_type_name(probs)}")
    in_dims, out_dims = _dims(image), _dims(probs)
    if len(in_dims) != 4 or in_dims[3] != 3:
        problems.append(f"{INPUT_NAME} shape {in_dims} is not [N, S, S, 3]")
    elif image_size is not None and in_dims[1:3] != [image_size, image_size]:
        problems.append(f"{INPUT_NAME} shape {in_dims} does not match image size {image_size}")
    if len(out_dims) != 2:
        problems.append(f"{OUTPUT_NAME} shape {out_dims} is not [N, classes]")
    for name, dims in ((INPUT_NAME, in_dims), (OUTPUT_NAME, out_dims)):
        if dims and not isinstance(dims[0], str):
            problems.append(
                f"{name} has a fixed batch axis ({dims[0]}); the contract needs a dynamic (symbolic) one"
            )
    if problems:
        raise ExportError(f"{path}: " + "; ".join(problems))
    size = int(in_dims[1])
    sess = session(path)
    for n in (1, 3):
        out = sess.run(None, {INPUT_NAME: np.zeros((n, size, size, 3), np.uint8)})[0]
        if out.shape[0] != n:
            raise ExportError(f"{path}: batch of {n} gave {out.shape[0]} rows; the batch axis is not dynamic")


def _type_name(value_info: onnx.ValueInfoProto) -> str:
    return str(onnx.TensorProto.DataType.Name(value_info.type.tensor_type.elem_type))
