"""Model delivery from the registry, for real: an `mlflow server` process (SQLite, loopback), export's
publish step, `python -m export.pull` as a subprocess (what the init container runs), a real Triton
serving what it pulled, and the gateway answering with the registered version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tritonclient.grpc import model_config_pb2 as mc

from export import ort_cpu
from export.contract import MODEL_NAME
from export.pull import PULLED_FILENAME
from export.pull import main as pull_main
from export.registry_artifacts import TAG_ARTIFACT_PATH, publish
from export.triton_config import read_config
from export.versions import VersionRecord
from serving.processes import free_port
from serving.triton import TritonLauncher
from tests.support.gateway import GatewayServer, gateway_settings, wait_ready
from tests.support.photos import photo
from tests.support.triton import tiny_classifier, triton_options, write_test_repositories

# `mlflow server` took 80-150 s to answer /health on this loaded machine (migrations + two imports).
pytestmark = pytest.mark.timeout(900)
ROOT = Path(__file__).resolve().parents[2]
MLFLOW = ROOT / ".venv" / "bin" / "mlflow"
NAME = "cats-dogs-classifier"


@dataclass
class Registry:
    url: str
    artifacts: Path  # the server's --artifacts-destination, to corrupt a file behind its back
    client: object


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [
            *(str(MLFLOW), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"),
            *("--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port)),
            *("--workers", "1"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=root,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield Registry(url, root / "artifacts", MlflowClient(tracking_uri=url))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def register(registry: Registry, canonical_model_dir: Path, triton_version: int, alias: str | None) -> str:
    """One MLflow model version with a run, its Triton version published by export's own function."""
    client = registry.client
    exp = client.get_experiment_by_name("delivery") or None  # type: ignore[attr-defined]
    exp_id = exp.experiment_id if exp else client.create_experiment("delivery")  # type: ignore[attr-defined]
    run = client.create_run(exp_id)  # type: ignore[attr-defined]
    if not client.search_registered_models(f"name='{NAME}'"):  # type: ignore[attr-defined]
        client.create_registered_model(NAME)  # type: ignore[attr-defined]
    mv = client.create_model_version(NAME, f"runs:/{run.info.run_id}/checkpoint", run.info.run_id)  # type: ignore[attr-defined]
    record = VersionRecord(
        triton_version=triton_version,
        mlflow_model_name=NAME,
        mlflow_version=str(mv.version),
        mlflow_run_id=run.info.run_id,
    )
    published = publish(canonical_model_dir, record, client=client, say=lambda _: None)  # type: ignore[arg-type]
    assert published is not None
    if alias:
        client.set_registered_model_alias(NAME, alias, str(mv.version))  # type: ignore[attr-defined]
    return str(mv.version)


def run_pull(registry: Registry, dest: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command the init container runs, as a process."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry.url, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "export.pull", "--dest", str(dest), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def pull_in_process(
    registry: Registry, dest: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> subprocess.CompletedProcess[str]:
    """The same entry point in this process (a subprocess costs seconds of imports on 2 cores)."""
    rc = pull_main(["--tracking-uri", registry.url, "--dest", str(dest), *args])
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc, out.out, out.err)


@pytest.fixture(scope="module")
def canonical(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export")
    write_test_repositories(root, tiny_classifier(), version=3)
    return root / "model_repository" / MODEL_NAME


@pytest.mark.triton
@pytest.mark.slow
def test_pulled_repository_is_served_by_triton_and_the_gateway_reports_the_registered_version(
    registry: Registry, canonical: Path, tmp_path: Path
) -> None:
    mlflow_version = register(registry, canonical, triton_version=3, alias="champion")
    dest = tmp_path / "models"
    result = run_pull(registry, dest, "--alias", "champion", "--flavor", "cpu")
    assert result.returncode == 0, result.stderr
    pulled = json.loads((dest / MODEL_NAME / PULLED_FILENAME).read_text())
    assert pulled["mlflow_version"] == mlflow_version and pulled["triton_version"] == 3
    assert sorted(p.name for p in dest.iterdir()) == [MODEL_NAME], "staging left behind in the repository"

    launcher = TritonLauncher(triton_options(tmp_path, dest))
    launcher.start()
    try:
        with (
            GatewayServer(gateway_settings(launcher.options.grpc_url)) as gw,
            httpx.Client(base_url=gw.url) as client,
        ):
            wait_ready(client, timeout_s=60)
            assert client.get("/health/ready").json()["model_version"] == "3"
            answer = client.post(
                "/predict",
                files={"file": ("pet.jpg", photo(4242), "image/jpeg")},
                headers={"Cache-Control": "no-cache"},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["model_version"] == "3"
    finally:
        launcher.stop()


def test_promotion_is_an_alias_move_and_the_next_pull_gets_the_new_version(
    registry: Registry, canonical: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    staging = tmp_path / "v4"
    write_test_repositories(staging, tiny_classifier(), version=4)
    new_version = register(registry, staging / "model_repository" / MODEL_NAME, triton_version=4, alias=None)
    dest = tmp_path / "models"
    assert pull_in_process(registry, dest, capsys, "--alias", "champion").returncode == 0
    before = json.loads((dest / MODEL_NAME / PULLED_FILENAME).read_text())["triton_version"]
    registry.client.set_registered_model_alias(NAME, "champion", new_version)  # type: ignore[attr-defined]
    result = pull_in_process(registry, dest, capsys, "--alias", "champion")
    assert result.returncode == 0, result.stderr
    assert (before, json.loads((dest / MODEL_NAME / PULLED_FILENAME).read_text())["triton_version"]) != (4, 4)
    assert sorted(p.name for p in (dest / MODEL_NAME).iterdir() if p.is_dir()) == ["4"]


def test_missing_alias_fails_with_a_clear_message(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = pull_in_process(registry, tmp_path / "models", capsys, "--alias", "no-such-alias")
    assert result.returncode == 1
    assert "alias 'no-such-alias' not found" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "models" / MODEL_NAME).exists()


def test_version_without_triton_artifacts_fails_with_a_clear_message(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = registry.client
    run = client.create_run(client.get_experiment_by_name("delivery").experiment_id)  # type: ignore[attr-defined]
    mv = client.create_model_version(NAME, f"runs:/{run.info.run_id}/checkpoint", run.info.run_id)  # type: ignore[attr-defined]
    result = pull_in_process(registry, tmp_path / "models", capsys, "--version", str(mv.version))
    assert result.returncode == 1
    assert "has no Triton artifacts" in result.stderr and "Traceback" not in result.stderr


def test_corrupt_artifact_fails_the_init_step(registry: Registry, canonical: Path, tmp_path: Path) -> None:
    # A process, like the init container: its exit status is what fails the pod's init step.
    version = register(registry, canonical, triton_version=3, alias="corrupt-me")
    mv = registry.client.get_model_version(NAME, version)  # type: ignore[attr-defined]
    # Flip bytes in the stored model.onnx behind the server's back (a truncated upload, bit rot).
    stored = [
        p
        for p in registry.artifacts.rglob("model.onnx")
        if mv.run_id in str(p) and mv.tags[TAG_ARTIFACT_PATH] in str(p)
    ]
    assert len(stored) == 1, stored
    data = bytearray(stored[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored[0].write_bytes(bytes(data))
    dest = tmp_path / "models"
    result = run_pull(registry, dest, "--alias", "corrupt-me")
    assert result.returncode == 1
    assert "corrupt artifact: cats_dogs/3/model.onnx sha256 mismatch" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (dest / MODEL_NAME).exists(), "a corrupt model reached the repository Triton serves"


def test_stock_cpu_flavor_is_onnxruntime_on_kind_cpu_and_parses_strictly(
    registry: Registry, canonical: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(registry, canonical, triton_version=3, alias="stock")
    dest = tmp_path / "models"
    assert pull_in_process(registry, dest, capsys, "--alias", "stock", "--flavor", "ort-cpu").returncode == 0
    config = read_config(dest / MODEL_NAME / "config.pbtxt")  # strict text_format parse of Triton's schema
    assert config.platform == ort_cpu.PLATFORM and not config.backend
    assert [g.kind for g in config.instance_group] == [mc.ModelInstanceGroup.KIND_CPU]
    assert ort_cpu.mismatches(read_config(canonical / "config.pbtxt"), config) == []
    assert (dest / MODEL_NAME / "3" / "model.onnx").is_file() and not (
        dest / MODEL_NAME / "3" / "model.py"
    ).exists()
