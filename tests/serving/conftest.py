"""A trivial python-backend model (no ONNX, no torch) so the launcher is tested on its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.processes import PROJECT_ROOT, free_port

# Answers [mean/255, 1 - mean/255] per image: enough to prove tensors cross the backend intact.
MODEL_PY = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            image = pb_utils.get_input_tensor_by_name(request, "image").as_numpy()
            mean = image.reshape(len(image), -1).mean(axis=1, dtype=np.float64) / 255.0
            out = np.stack([mean, 1.0 - mean], axis=1).astype(np.float32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("probabilities", out)]))
        return responses
"""

CONFIG = """name: "cats_dogs"
backend: "python"
max_batch_size: 4
input [{ name: "image" data_type: TYPE_UINT8 dims: [ 8, 8, 3 ] }]
output [{ name: "probabilities" data_type: TYPE_FP32 dims: [ 2 ] }]
dynamic_batching { }
instance_group [{ kind: KIND_CPU count: 1 }]
parameters: { key: "class_names" value: { string_value: '["cat", "dog"]' } }
parameters: { key: "image_size" value: { string_value: "8" } }
parameters: { key: "mlflow_model_name" value: { string_value: "trivial-test-model" } }
"""


@pytest.fixture
def ports() -> dict[str, int]:
    return {"http": free_port(), "grpc": free_port(), "metrics": free_port(), "gateway": free_port()}


@pytest.fixture
def trivial_repository(tmp_path: Path) -> Path:
    repository = tmp_path / "repo"
    (repository / "cats_dogs" / "1").mkdir(parents=True)
    (repository / "cats_dogs" / "1" / "model.py").write_text(MODEL_PY)
    (repository / "cats_dogs" / "config.pbtxt").write_text(CONFIG)
    return repository


@pytest.fixture
def backend_venv() -> Path:
    venv = PROJECT_ROOT / ".venv-triton"
    if not (venv / "bin" / "python").exists():
        pytest.fail(f"{venv} missing: run `make setup`")
    return venv
