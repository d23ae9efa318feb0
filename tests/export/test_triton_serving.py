"""The derived CPU repository loads and infers in the real Triton (python backend + onnxruntime)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from export.contract import INPUT_NAME, OUTPUT_NAME
from export.onnx_export import session
from export.pipeline import ExportResult
from serving.processes import free_port
from tests.export.export_helpers import IMAGE_SIZE
from tests.support.triton import triton_counts

pytestmark = [pytest.mark.slow, pytest.mark.triton]


@pytest.fixture(scope="module")
def triton_url(exported: ExportResult, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from serving.triton import TritonLauncher, TritonOptions

    assert exported.cpu_model_dir is not None
    run = tmp_path_factory.mktemp("triton-run")
    options = TritonOptions(
        repository=exported.cpu_model_dir.parent,
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
        backends_dir=run / "backends",
        log_file=run / "triton.log",
        pid_file=run / "triton.pid",
        ready_timeout_s=120,
    )
    launcher = TritonLauncher(options)
    launcher.start()
    try:
        yield f"127.0.0.1:{options.http_port}"
    finally:
        launcher.stop()


def _infer(url: str, images: np.ndarray) -> np.ndarray:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url)
    tensor = httpclient.InferInput(INPUT_NAME, list(images.shape), "UINT8")
    tensor.set_data_from_numpy(images)
    result = client.infer("cats_dogs", [tensor], outputs=[httpclient.InferRequestedOutput(OUTPUT_NAME)])
    out = result.as_numpy(OUTPUT_NAME)
    assert out is not None
    return out


def test_metadata_and_parameters_served(triton_url: str, exported: ExportResult) -> None:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(triton_url)
    meta = client.get_model_metadata("cats_dogs")
    assert meta["versions"] == [str(exported.version)]
    assert meta["inputs"] == [
        {"name": "image", "datatype": "UINT8", "shape": [-1, IMAGE_SIZE, IMAGE_SIZE, 3]}
    ]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]
    params = client.get_model_config("cats_dogs")["parameters"]
    assert params["class_names"]["string_value"] == '["cat", "dog"]'


def test_triton_answers_like_onnxruntime_under_dynamic_batching(
    triton_url: str, exported: ExportResult
) -> None:
    images = np.random.default_rng(0).integers(0, 256, (40, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    expected = session(exported.onnx_path).run(None, {INPUT_NAME: images})[0]
    np.testing.assert_allclose(_infer(triton_url, images[:5]), expected[:5], atol=1e-6)
    # 1-image requests in parallel: the batcher merges them and model.py must split the answer back.
    before = triton_counts(triton_url)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: _infer(triton_url, images[i : i + 1])[0], range(len(images))))
    np.testing.assert_allclose(np.stack(got), expected, atol=1e-6)
    # Triton's own statistics: the burst was executed in batches of more than one image.
    after = triton_counts(triton_url)
    executions = after.executions - before.executions
    assert after.inferences - before.inferences == len(images)
    assert executions < len(images), (executions, after.batches)
    assert after.largest_batch_since(before) > 1, after.batches


def test_bad_input_gets_an_error_not_a_crash(triton_url: str) -> None:
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match="shape"):
        _infer(triton_url, np.zeros((1, IMAGE_SIZE // 2, IMAGE_SIZE // 2, 3), np.uint8))
    assert _infer(triton_url, np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)).shape == (1, 2)


def test_model_py_is_the_template(exported: ExportResult) -> None:
    assert exported.cpu_model_dir is not None
    template = Path(__file__).parents[2] / "export" / "triton_python_model.py"
    assert (exported.cpu_model_dir / str(exported.version) / "model.py").read_bytes() == template.read_bytes()
