"""The tiny model, its repositories (written by export's own writer) and a test Triton on free ports.

The repositories come from ``export.repository.write_repository_version``, the function
``python -m export`` calls after its gates, so tests serve exactly what an export writes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from export.contract import MODEL_NAME
from serving.processes import PROJECT_ROOT, free_port
from serving.triton import TritonLauncher, TritonOptions
from tests.support.photos import photo

BACKEND_VENV = PROJECT_ROOT / ".venv-triton"

IMAGE_SIZE = 64  # small: the contract is the same at any size, and tests stay fast on 2 cores
MAX_BATCH = 8
QUEUE_SIZE = 4


@dataclass
class TritonFixture:
    """A test Triton: its launcher, the repository it serves and the model behind it."""

    launcher: TritonLauncher
    repository: Path
    classifier: torch.nn.Module

    @property
    def grpc_url(self) -> str:
        return self.launcher.options.grpc_url

    @property
    def http_url(self) -> str:
        return f"{self.launcher.options.host}:{self.launcher.options.http_port}"


def triton_options(root: Path, repository: Path) -> TritonOptions:
    """Options for a Triton on free ports with its log and PID file under ``root``."""
    if not (BACKEND_VENV / "bin" / "python").exists():
        pytest.fail(f"{BACKEND_VENV} missing: run `make setup` (the Triton server and its backend venv)")
    return TritonOptions(
        repository=repository,
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
        backend_venv=BACKEND_VENV,
        backends_dir=PROJECT_ROOT / "build" / "triton_backends",
        log_file=root / "triton.log",
        pid_file=root / "triton.pid",
        ready_timeout_s=90,
    )


def tiny_classifier() -> torch.nn.Module:
    """A seeded, untrained network whose answers are decisive and split between both classes.

    The head is scaled up (probabilities far from 0.5) and its bias centred on the median logit gap
    of a set of synthetic photos, so parity tests see both classes and no coin flips.
    """
    from training.models import PetClassifier, get_model
    from training.transforms import EvalTransform

    torch.manual_seed(0)
    model = PetClassifier(get_model("simple_cnn", width=8)).eval()
    transform = EvalTransform(image_size=IMAGE_SIZE)
    calibration = torch.from_numpy(np.stack([transform(photo(1000 + i)) for i in range(32)]))
    with torch.no_grad():
        head = model.network.head[-1]
        head.weight.mul_(40.0)
        head.bias.mul_(40.0)
        logits = model(calibration)
        gap = (logits[:, 1] - logits[:, 0]).median()
        head.bias[1] -= gap
    return model


def write_test_repositories(root: Path, classifier: torch.nn.Module, version: int = 1) -> Path:
    """``root/model_repository`` (canonical) and ``root/model_repository_cpu`` (derived, returned), written
    by the same function ``python -m export`` calls after its gates."""
    from export.contract import ONNX_FILENAME
    from export.cpu_repository import CpuOptions
    from export.metadata import ModelFacts
    from export.repository import write_model_file, write_repository_version
    from export.triton_config import ServingOptions
    from export.versions import VersionRecord
    from training.transforms import CLASS_NAMES, MEAN, STD

    facts = ModelFacts(
        class_names=CLASS_NAMES,
        image_size=IMAGE_SIZE,
        mean=MEAN,
        std=STD,
        architecture="simple_cnn",
        mlflow_model_name="test-fixture",
        model_version_mlflow="7",
        triton_model_version=version,
    )
    staged = root / f".staged-version-{version}"
    staged.mkdir(parents=True)
    write_model_file(classifier, facts, staged / ONNX_FILENAME)
    serving = ServingOptions(
        max_batch_size=MAX_BATCH,
        preferred_batch_sizes=(4, 8),
        max_queue_delay_us=1000,
        # Small, so a burst can overflow Triton's queue and the 429 path is tested for real.
        max_queue_size=QUEUE_SIZE,
    )
    record = VersionRecord(
        triton_version=version, mlflow_model_name="test-fixture", mlflow_version="7", source="test fixture"
    )
    cpu_repository = root / "model_repository_cpu"
    write_repository_version(
        staged,
        facts,
        root / "model_repository",
        record,
        cpu_repository=cpu_repository,
        serving=serving,
        cpu=CpuOptions(instance_count=1, intra_op_threads=1),
        say=lambda _: None,
    )
    return cpu_repository


@contextlib.contextmanager
def running_triton(
    root: Path, classifier: torch.nn.Module, *, prepare: Callable[[Path], None] | None = None
) -> Iterator[TritonFixture]:
    """A Triton serving ``classifier`` from repositories under ``root``, stopped on exit (unless a
    test stopped it already). ``prepare`` may change the CPU repository before the server starts."""
    repository = write_test_repositories(root, classifier)
    if prepare is not None:
        prepare(repository)
    launcher = TritonLauncher(triton_options(root, repository))
    launcher.start()
    try:
        yield TritonFixture(launcher, repository, classifier)
    finally:
        if launcher.pid is not None:
            launcher.stop()


@dataclass(frozen=True)
class TritonCounts:
    """Triton's own statistics for one model (all versions): images inferred, model executions, and
    executions per batch size. Read before and after a request to prove it reached Triton."""

    inferences: int
    executions: int
    batches: dict[int, int]

    def largest_batch_since(self, earlier: TritonCounts) -> int:
        """The largest batch size executed between ``earlier`` and this reading (0: none)."""
        grown = [size for size, count in self.batches.items() if count > earlier.batches.get(size, 0)]
        return max(grown, default=0)


def triton_counts(http_url: str, model: str = MODEL_NAME) -> TritonCounts:
    """Triton's statistics extension (GET /v2/models/<model>/stats) on its HTTP port, ``host:port``."""
    response = httpx.get(f"http://{http_url}/v2/models/{model}/stats", timeout=10)
    response.raise_for_status()
    stats = response.json()["model_stats"]
    batches: dict[int, int] = {}
    for version in stats:
        for entry in version.get("batch_stats", []):
            size = int(entry["batch_size"])
            batches[size] = batches.get(size, 0) + int(entry["compute_infer"]["count"])
    return TritonCounts(
        inferences=sum(int(v["inference_count"]) for v in stats),
        executions=sum(int(v["execution_count"]) for v in stats),
        batches=batches,
    )
