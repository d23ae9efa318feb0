"""Reduced-precision variants of an exported model, each behind its own accuracy gate.

Where variants live: beside the FP32 file in the same version directory —
``<version>/model.int8.onnx`` and ``<version>/model.fp16.onnx`` — with the same tensor names,
dtypes (uint8 in, FP32 probabilities out) and metadata. So a variant shares its version number,
its Triton↔MLflow mapping, its baseline statistics and its rollback with the FP32 model, and
serving one is a matter of which file the server opens, not a second model to keep in step:

- INT8 (CPU): ``python -m export --int8 --cpu-variant int8`` makes the derived CPU repository's
  python backend open ``model.int8.onnx`` (config parameter ``onnx_model_filename``).
- FP16 (GPU): set ``default_model_filename: "model.fp16.onnx"`` in a GPU deployment, or keep
  FP32 weights and let ``--tensorrt-fp16`` build an FP16 TensorRT engine.

INT8 is ONNX Runtime static quantisation in QDQ format (per-channel INT8 weights, UINT8
activations, MinMax calibration on training-split images); Softmax and the input normalisation
stay in float so probabilities keep their resolution. FP16 converts weights and activations
while keeping the uint8 input and the FP32 output (``keep_io_types``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from contract.model import INPUT_NAME
from export.check_images import LabelledImages
from export.gate import predict
from export.metadata import read_onnx_metadata
from export.onnx_export import check_full, verify_contract

VARIANT_FILES = {"int8": "model.int8.onnx", "fp16": "model.fp16.onnx"}
MIN_AGREEMENT = 0.99
MAX_ACCURACY_DROP = 0.005  # half a percentage point
CALIBRATION_BATCH = 16
# Quantised op types: the compute-heavy ones ORT fuses into integer kernels. Normalisation (Mul/Add
# on the input) and Softmax stay float.
QUANTIZED_OPS = ["Conv", "Gemm", "MatMul", "MaxPool", "GlobalAveragePool", "AveragePool"]


class VariantRefusedError(RuntimeError):
    """A reduced-precision variant disagrees with the FP32 model beyond its gate."""


@dataclass(frozen=True)
class VariantReport:
    variant: str
    agreement: float
    accuracy_fp32: float
    accuracy_variant: float
    images: int
    source: str

    @property
    def accuracy_drop(self) -> float:
        return self.accuracy_fp32 - self.accuracy_variant

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": VARIANT_FILES[self.variant],
            "argmax_agreement": round(self.agreement, 6),
            "accuracy_fp32": round(self.accuracy_fp32, 6),
            "accuracy": round(self.accuracy_variant, 6),
            "accuracy_drop": round(self.accuracy_drop, 6),
            "images": self.images,
            "data": self.source,
        }

    def __str__(self) -> str:
        return (
            f"{self.variant}: argmax agreement {self.agreement:.2%}, accuracy {self.accuracy_variant:.4f} "
            f"vs fp32 {self.accuracy_fp32:.4f} (drop {self.accuracy_drop * 100:+.2f} pt) "
            f"on {self.images} images"
        )


def _copy_metadata(src: Path, dst: Path, variant: str) -> None:
    props = read_onnx_metadata(src)
    props["precision"] = variant
    model = onnx.load(str(dst))
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(dst))


class _Calibration:
    """onnxruntime.quantization.CalibrationDataReader over uint8 images, in batches."""

    def __init__(self, images: np.ndarray) -> None:
        self._batches = iter(
            [images[i : i + CALIBRATION_BATCH] for i in range(0, len(images), CALIBRATION_BATCH)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}

    def rewind(self) -> None:  # part of the reader protocol; one pass is all MinMax needs
        pass


def quantize_int8(fp32_path: Path, out_path: Path, calibration: np.ndarray) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration) == 0:
        raise VariantRefusedError("INT8 calibration needs at least one image")

    class Reader(_Calibration, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(prefix="int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=False)
        quantize_static(
            str(prepared),
            str(out_path),
            Reader(calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=QUANTIZED_OPS,
        )
    _finish(fp32_path, out_path, "int8")
    return out_path


def convert_fp16(fp32_path: Path, out_path: Path) -> Path:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True)
    onnx.save(model, str(out_path))
    _finish(fp32_path, out_path, "fp16")
    return out_path


def _finish(fp32_path: Path, out_path: Path, variant: str) -> None:
    _copy_metadata(fp32_path, out_path, variant)
    check_full(out_path)
    verify_contract(out_path)


def measure_variant(variant: str, fp32_path: Path, variant_path: Path, data: LabelledImages) -> VariantReport:
    """The variant against the FP32 model on ``data``: argmax agreement and both accuracies."""
    reference = predict(fp32_path, data.images).argmax(1)
    got = predict(variant_path, data.images).argmax(1)
    return VariantReport(
        variant,
        float((reference == got).mean()),
        float((reference == data.labels).mean()),
        float((got == data.labels).mean()),
        len(data),
        data.source,
    )


def gate_failure(
    report: VariantReport, *, min_agreement: float = MIN_AGREEMENT, max_drop: float = MAX_ACCURACY_DROP
) -> str | None:
    """Why ``report`` fails the variant gate, or None when it passes."""
    if report.agreement < min_agreement or report.accuracy_drop > max_drop:
        return f"{report}: gate needs agreement >= {min_agreement:.0%} and a drop <= {max_drop * 100:.1f} pt"
    return None


def gate_variant(
    variant: str,
    fp32_path: Path,
    variant_path: Path,
    data: LabelledImages,
    *,
    min_agreement: float = MIN_AGREEMENT,
    max_drop: float = MAX_ACCURACY_DROP,
) -> VariantReport:
    report = measure_variant(variant, fp32_path, variant_path, data)
    failure = gate_failure(report, min_agreement=min_agreement, max_drop=max_drop)
    if failure is not None:
        raise VariantRefusedError(failure)
    return report
