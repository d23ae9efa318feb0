"""Retraining on new photos at another input size never breaks serving.

The served model (32 px), then a model trained on new photos at 48 px, then a rollback: after each
step a freshly started real Triton (CPU repository, ``--exit-on-error``) starts and serves, and a
running one reloads. Before the fix, num_versions 2 kept the 32 px version beside the 48 px one and
its warm-up sample stopped Triton at start-up.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from export.check_images import DataLocation, load_split
from export.contract import INPUT_NAME, OUTPUT_NAME
from export.cpu_repository import CpuOptions
from export.onnx_export import session
from export.pipeline import ExportRequest, run_export
from export.rollback import main as rollback
from export.triton_config import read_config
from serving.triton import TritonLauncher, reload_model
from tests.export.export_helpers import Models, ingest_and_preprocess, source, train_on, write_new_photos
from tests.support.triton import triton_options

pytestmark = [pytest.mark.slow, pytest.mark.triton]


@contextmanager
def started_triton(run_dir: Path, repository: Path) -> Iterator[TritonLauncher]:
    """A fresh Triton on the repository; start() raises when the server exits during start-up."""
    run_dir.mkdir(parents=True)
    launcher = TritonLauncher(triton_options(run_dir, repository))
    launcher.start()
    try:
        yield launcher
    finally:
        launcher.stop()


def infer(launcher: TritonLauncher, images: np.ndarray) -> np.ndarray:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(launcher.options.http_url.removeprefix("http://"))
    tensor = httpclient.InferInput(INPUT_NAME, list(images.shape), "UINT8")
    tensor.set_data_from_numpy(images)
    out = client.infer("cats_dogs", [tensor]).as_numpy(OUTPUT_NAME)
    assert out is not None
    return out


def ready_versions(launcher: TritonLauncher, candidates: range) -> list[int]:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(launcher.options.http_url.removeprefix("http://"))
    return [v for v in candidates if client.is_model_ready("cats_dogs", str(v))]


def serves_like(launcher: TritonLauncher, onnx_path: Path, size: int) -> None:
    images = np.random.default_rng(size).integers(0, 256, (4, size, size, 3), dtype=np.uint8)
    expected = session(onnx_path).run(None, {INPUT_NAME: images})[0]
    np.testing.assert_allclose(infer(launcher, images), expected, atol=1e-5)


def test_retrain_at_another_size_then_rollback_keeps_triton_serving(
    tmp_path: Path, models: Models, dataset: DataLocation
) -> None:
    cpu = tmp_path / "cpu"
    req = ExportRequest(
        repository=tmp_path / "repo", cpu_repository=cpu, data=dataset, cpu=CpuOptions(intra_op_threads=1)
    )
    first = run_export(source(models.trained), req, say=lambda _: None)
    with started_triton(tmp_path / "t1", cpu) as triton:
        serves_like(triton, first.onnx_path, 32)

        # New photos at 48 px, as `make up DATA_DIR=…` brings them; the gate is not forced.
        new_data = ingest_and_preprocess(write_new_photos(tmp_path / "photos", 240), tmp_path / "new", 48)
        said: list[str] = []
        second = run_export(
            source(train_on(new_data, 48), image_size=48),
            replace(req, data=new_data, min_accuracy=0.5),
            say=said.append,
        )
        assert any(line.startswith("gate passed") and "on the same" in line for line in said), said
        assert any("input size changes 32 → 48px: Triton loads only the new version" in s for s in said)
        for path in (tmp_path / "repo" / "cats_dogs", cpu / "cats_dogs"):
            config = read_config(path / "config.pbtxt")
            assert config.version_policy.latest.num_versions == 1
            assert list(config.input[0].dims) == [48, 48, 3]

        reload_model(triton.options)  # the running server picks the new version up
        serves_like(triton, second.onnx_path, 48)
        assert ready_versions(triton, range(1, 3)) == [2]

    with started_triton(tmp_path / "t2", cpu) as triton:  # a fresh start with both versions on disk
        serves_like(triton, second.onnx_path, 48)
        assert ready_versions(triton, range(1, 3)) == [2]
        test = load_split("test", 48, location=new_data)
        assert test is not None
        served = infer(triton, test.images[:16]).argmax(1)
        assert (served == test.labels[:16]).mean() >= 0.5

        args = ["--repository", str(tmp_path / "repo"), "--cpu-repository", str(cpu)]
        assert rollback([*args, "--retired-dir", str(tmp_path / "retired"), "--no-mlflow"]) == 0
        reload_model(triton.options)
        serves_like(triton, first.onnx_path, 32)
        assert ready_versions(triton, range(1, 3)) == [1]

    with started_triton(tmp_path / "t3", cpu) as triton:
        serves_like(triton, first.onnx_path, 32)
        assert ready_versions(triton, range(1, 3)) == [1]
