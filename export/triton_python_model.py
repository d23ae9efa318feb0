"""Triton python-backend model that serves the exported ``model.onnx`` with ONNX Runtime (CPU).

Copied verbatim as ``<version>/model.py`` into the derived CPU repository by
``export.cpu_repository``; it runs inside Triton's python backend stub, in the numpy<2 venv
(.venv-triton), so it imports nothing from this project.

Config ``parameters`` it reads: ``onnx_model_filename`` (default ``model.onnx``; ``model.int8.onnx``
serves the INT8 variant), ``ort_intra_op_threads`` (0 = ORT's default).

All requests of a dynamic batch are concatenated into one ONNX Runtime call and the output is split
back per request: that single call is where dynamic batching pays off. A request with a bad input
gets its own error response; the rest of the batch is still served.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]
        self.input_dims = tuple(int(d) for d in config["input"][0]["dims"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        filename = params.get("onnx_model_filename") or "model.onnx"
        path = version_dir / filename
        if not path.is_file():
            fallback = version_dir / "model.onnx"
            if filename == "model.onnx" or not fallback.is_file():
                raise pb_utils.TritonModelException(f"model file not found: {path}")
            pb_utils.Logger.log_warn(f"{path} missing in this version; serving {fallback}")
            path = fallback
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = int(params.get("ort_intra_op_threads") or 0)
        options.inter_op_num_threads = 1
        # Idle ORT threads spin-wait by default; on a CPU shared with Triton's frontend, the gateway
        # and decoding, those spinning cycles are stolen from the work (py-spy, BENCHMARKS analysis).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        pb_utils.Logger.log_info(
            f"cats_dogs version {args['model_version']}: {path.name} with onnxruntime "
            f"{ort.__version__}, intra-op threads {options.intra_op_num_threads}"
        )

    def _check(self, array: np.ndarray | None) -> str | None:
        if array is None:
            return f"missing input {self.input_name!r}"
        if array.dtype != np.uint8:
            return f"input {self.input_name!r} must be UINT8, got {array.dtype}"
        if array.ndim != 1 + len(self.input_dims) or tuple(array.shape[1:]) != self.input_dims:
            expected = ", ".join(map(str, self.input_dims))
            return f"input {self.input_name!r} must be [N, {expected}], got {list(array.shape)}"
        if array.shape[0] == 0:
            return "empty batch"
        return None

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        arrays: list[np.ndarray] = []
        owners: list[int] = []
        for i, request in enumerate(requests):
            tensor = pb_utils.get_input_tensor_by_name(request, self.input_name)
            array = None if tensor is None else tensor.as_numpy()
            problem = self._check(array)
            if problem is not None:
                responses[i] = pb_utils.InferenceResponse(
                    output_tensors=[], error=pb_utils.TritonError(problem)
                )
                continue
            assert array is not None
            arrays.append(array)
            owners.append(i)
        if arrays:
            try:
                batch = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
                probabilities = self.session.run([self.output_name], {self.input_name: batch})[0]
            except Exception as exc:  # an ORT failure must answer every request, not crash the stub
                for i in owners:
                    responses[i] = pb_utils.InferenceResponse(
                        output_tensors=[], error=pb_utils.TritonError(f"onnxruntime failed: {exc}")
                    )
                return responses
            start = 0
            for i, array in zip(owners, arrays, strict=True):
                part = np.ascontiguousarray(probabilities[start : start + len(array)], dtype=np.float32)
                start += len(array)
                responses[i] = pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor(self.output_name, part)]
                )
        return responses

    def finalize(self) -> None:
        self.session = None
