"""Helpers shared by the gateway tests: synthetic photos, free ports, the tiny model and its
repositories, the options and handle of a test Triton, and an in-process gateway server.
Fixtures live in conftest.py (tests/ and tests/hardening/)."""

from __future__ import annotations

import contextlib
import io
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import uvicorn
from PIL import Image

from gateway import Settings, create_app
from gateway.__main__ import server_options
from serving.triton import TritonLauncher, TritonOptions

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BACKEND_VENV = PROJECT_ROOT / ".venv-triton"

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a root, sandbox-less, offline machine (without the networking ones Chromium keeps
# dialling Google's hosts and the closed network refuses them).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

IMAGE_SIZE = 64  # small: the contract is the same at any size, and tests stay fast on 2 cores
MAX_BATCH = 8
QUEUE_SIZE = 4


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def build_repositories(root: Path, classifier: torch.nn.Module, version: int = 1) -> Path:
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
        cpu=CpuOptions(intra_op_threads=1),
        say=lambda _: None,
    )
    return cpu_repository


class GatewayServer:
    """uvicorn in a thread: the real HTTP stack (disconnects, multipart) without a process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, **{**server_options(settings), "log_level": "warning"}, lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, name="gateway", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    def __enter__(self) -> GatewayServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def gateway_settings(triton_grpc_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "triton_url": triton_grpc_url,
        "triton_protocol": "grpc",
        "port": free_port(),
        "model_refresh_s": 0.5,
        "max_upload_bytes": 2 * 1024 * 1024,
        "max_pixels": 4_000_000,
        # Each gateway gets its own prediction log, never the checkout's run/ folder.
        "tracking_db": Path(tempfile.mkdtemp(prefix="gw-tracking-")) / "predictions.db",
        "stats_snapshot_path": "",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


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


def triton_counts(http_url: str, model: str = "cats_dogs") -> TritonCounts:
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


def wait_ready(client: httpx.Client, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/health/ready").status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"gateway not ready after {timeout_s} s: {client.get('/health').json()}")


def encode(array: np.ndarray, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt, **kwargs)
    return buf.getvalue()


def photo(seed: int, size: tuple[int, int] = (320, 240), fmt: str = "JPEG") -> bytes:
    """A smooth synthetic photo (gradients + blobs): realistic enough for JPEG, deterministic."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    channels = []
    for _ in range(3):
        a, b, c = rng.uniform(-1, 1, 3)
        channels.append(128 + 60 * np.sin(a * xx / 37 + b * yy / 23 + c * 6))
    img = np.stack(channels, axis=-1)
    for _ in range(4):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(10, min(w, h) / 2)
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r**2
        img[mask] = rng.uniform(0, 255, 3)
    return encode(np.clip(img, 0, 255).astype(np.uint8), fmt)
