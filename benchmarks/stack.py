"""What the benchmark suite measures, built and started the way users build and start it.

One checkpoint → ONNX + INT8 → a repository version written by ``export.repository`` (the writer
``python -m export`` calls after its gates: canonical config, labels, versions.json and the derived
CPU repository). The CPU repository then gets two siblings derived from the generated config, never
hand-written: ``cats_dogs_int8`` (the CPU repository built with ``--cpu-variant int8``) and
``cats_dogs_nobatch`` (dynamic batching removed).
Triton starts through ``serving.triton.TritonLauncher`` and the gateway through
``serving.gateway_process.start_gateway`` — the launchers behind ``make triton`` / ``make gateway``.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export.contract import CONFIG_FILENAME, MODEL_NAME, ONNX_FILENAME
from export.cpu_repository import CpuOptions, build
from export.metadata import ModelFacts
from export.quantize import VARIANT_FILES, quantize_int8
from export.repository import write_model_file, write_repository_version
from export.triton_config import read_config, write_config
from export.versions import VersionRecord
from serving.gateway_process import GatewayOptions, start_gateway
from serving.processes import PROJECT_ROOT, stop_by_pid_file, wait_http_ok
from serving.triton import TritonLauncher, TritonOptions
from training.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from training.models import PetClassifier, get_model
from training.transforms import CLASS_NAMES, MEAN, STD

INT8_MODEL = f"{MODEL_NAME}_int8"
NOBATCH_MODEL = f"{MODEL_NAME}_nobatch"


@dataclass(frozen=True)
class ModelSpec:
    architecture: str
    image_size: int
    kwargs: dict[str, Any]  # extra get_model arguments (e.g. width)


def random_checkpoint(path: Path, spec: ModelSpec, seed: int = 0) -> Path:
    """A seeded, untrained checkpoint: speed does not depend on weight values (accuracy is reported apart)."""
    torch.manual_seed(seed)
    network = get_model(spec.architecture, **spec.kwargs)
    meta = CheckpointMeta(
        model_name=spec.architecture,
        model_kwargs=dict(spec.kwargs),
        class_names=list(CLASS_NAMES),
        image_size=spec.image_size,
        mean=list(MEAN),
        std=list(STD),
    )
    return save_checkpoint(path, PetClassifier(network).eval(), meta)


@dataclass(frozen=True)
class Repositories:
    checkpoint: Path
    canonical: Path  # model_repository/cats_dogs
    cpu: Path  # repository root holding cats_dogs, cats_dogs_int8, cats_dogs_nobatch
    fp32_onnx: Path
    int8_onnx: Path
    image_size: int


def build_repositories(
    checkpoint: Path, work: Path, calibration: np.ndarray, *, cpu: CpuOptions | None = None
) -> Repositories:
    """The repositories ``python -m export`` writes; ``cpu`` defaults to what users get (CpuOptions())."""
    cpu = cpu or CpuOptions()
    model, meta = load_checkpoint(checkpoint)
    size = int(meta.image_size)
    repository = work / "model_repository"
    cpu_root = work / "model_repository_cpu"
    staged = work / "version_staging"
    for stale in (repository, cpu_root, staged, work / "int8_staging"):
        shutil.rmtree(stale, ignore_errors=True)
    staged.mkdir(parents=True)
    facts = ModelFacts(
        class_names=tuple(meta.class_names),
        image_size=size,
        mean=tuple(meta.mean),
        std=tuple(meta.std),
        architecture=meta.model_name,
        mlflow_model_name="benchmark",
        triton_model_version=1,
    )
    fp32 = write_model_file(model, facts, staged / ONNX_FILENAME)
    quantize_int8(fp32, staged / VARIANT_FILES["int8"], calibration)
    record = VersionRecord(triton_version=1, mlflow_model_name="benchmark", source=f"checkpoint:{checkpoint}")
    written = write_repository_version(
        staged,
        facts,
        repository,
        record,
        cpu_repository=cpu_root,
        cpu=cpu,
        say=lambda _: None,
    )
    canonical = written.model_dir
    staged_int8 = build(canonical, work / "int8_staging", dataclasses.replace(cpu, variant="int8"))
    _rename_model(staged_int8, cpu_root / INT8_MODEL)
    shutil.rmtree(work / "int8_staging", ignore_errors=True)
    derive_without_dynamic_batching(cpu_root / MODEL_NAME, cpu_root / NOBATCH_MODEL)
    vdir = written.version_dir
    return Repositories(
        checkpoint, canonical, cpu_root, vdir / ONNX_FILENAME, vdir / VARIANT_FILES["int8"], size
    )


def _rename_model(src: Path, dst: Path) -> None:
    src.rename(dst)
    config = read_config(dst / CONFIG_FILENAME)
    config.name = dst.name
    write_config(config, dst / CONFIG_FILENAME)


def derive_without_dynamic_batching(model_dir: Path, target: Path) -> Path:
    """Same model, files and config except ``dynamic_batching``: Triton then runs requests one by one."""
    shutil.copytree(model_dir, target)
    config = read_config(target / CONFIG_FILENAME)
    config.ClearField("dynamic_batching")
    config.name = target.name
    write_config(config, target / CONFIG_FILENAME)
    return target


def local_triton(repository: Path, work: Path) -> TritonOptions:
    """A Triton for one benchmark: free loopback ports, its log and pid file in ``work``."""
    from serving.processes import free_port

    return TritonOptions(
        repository=repository, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
        log_file=work / "triton.log", pid_file=work / "triton.pid", ready_timeout_s=180,
    )  # fmt: skip


def load_model(options: TritonOptions, name: str, timeout_s: float = 180.0) -> None:
    """Explicit model control: the launcher loads cats_dogs; the siblings are loaded through the API."""
    request = urllib.request.Request(
        f"{options.http_url}/v2/repository/models/{name}/load", data=b"{}", method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout_s):
        pass


def timed_triton_start(options: TritonOptions) -> tuple[TritonLauncher, float]:
    """Seconds from spawning the server to the model answering ready (warm-up samples included)."""
    launcher = TritonLauncher(options)
    start = time.perf_counter()
    launcher.start()
    return launcher, time.perf_counter() - start


def timed_gateway_start(options: GatewayOptions) -> float:
    """Seconds from spawning ``python -m gateway`` to ``/health/ready`` (model metadata read from Triton)."""
    start = time.perf_counter()
    start_gateway(options)
    return time.perf_counter() - start


def stop_gateway(options: GatewayOptions) -> None:
    stop_by_pid_file(options.pid_file)


class BaselineServer:
    """``python -m benchmarks.baseline_server`` in its own process, as the original design deploys it."""

    def __init__(self, checkpoint: Path, port: int, log_file: Path) -> None:
        self.checkpoint, self.port, self.log_file = checkpoint, port, log_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120.0) -> float:
        start = time.perf_counter()
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.baseline_server", "--checkpoint", str(self.checkpoint),
                 "--port", str(self.port)],
                cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_http_ok(
            self.url + "/health", timeout_s=timeout_s, pid=self.process.pid, log_file=self.log_file,
            what="baseline server",
        )  # fmt: skip
        return time.perf_counter() - start

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    return [pid, *_children(pid)]


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` plus its children (a server that forks workers counts them all)."""
    total = 0
    for each in process_tree(pid):
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        for task in tasks:
            text = (task / "children").read_text().split()
            for child in map(int, text):
                found += [child, *_children(child)]
    except OSError:
        pass
    return found
