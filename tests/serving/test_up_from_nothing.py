"""`make up SOURCE=synthetic` on a fresh machine: nothing exported yet, so it trains with the quick recipe,
evaluates, exports and serves, and the gateway answers with the model this run exported.

The checkout is a copy of the repository's files (what a clone has: tracked and unignored files) in a
temporary folder, with the two environments linked in as `make setup` would have made them; MLflow,
DVC-free data, the model repositories and run/ all start empty there.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from serving.processes import PROJECT_ROOT, is_running

# The quick recipe trains for real (configs/quick.yaml: ~1-3 CPU minutes on 2 cores), over the suite's
# 300 s default per test once ingest, export and the two start-ups are added.
pytestmark = [pytest.mark.triton, pytest.mark.slow, pytest.mark.timeout(900)]


def fresh_checkout(dest: Path) -> Path:
    """The repository's files as a clone would have them (no data, models, runs or build outputs)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = PROJECT_ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not there
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    venv = PROJECT_ROOT / ".venv-triton"
    if not (venv / "bin" / "python").exists():
        pytest.fail(f"{venv} missing: run `make setup`")
    (dest / ".venv-triton").symlink_to(venv.resolve())
    return dest


def synthetic_upload(label: str, index: int) -> bytes:
    """A photo from the synthetic generator with a seed training never saw (it trains on seed 0)."""
    from training.synthetic import make_image

    item = make_image(label, index, seed=12345)
    buf = io.BytesIO()
    item.image.save(buf, item.format)
    return buf.getvalue()


def test_up_trains_evaluates_exports_and_serves_from_nothing(tmp_path: Path, ports: dict[str, int]) -> None:
    checkout = fresh_checkout(tmp_path / "checkout")
    assert not (checkout / "build").exists() and not (checkout / "mlflow.db").exists()
    run_dir = checkout / "run"
    # The checkout's own code and stores: nothing of this repository's MLflow or data leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PETS_"))}
    env |= {"PYTHONPATH": str(checkout), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"}
    command = [
        sys.executable, "-m", "serving.up", "--source", "synthetic",
        "--port", str(ports["gateway"]), "--triton-grpc-port", str(ports["grpc"]),
        "--triton-http-port", str(ports["http"]), "--triton-metrics-port", str(ports["metrics"]),
        "--run-dir", str(run_dir),
    ]  # fmt: skip
    try:
        up = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, timeout=1500)
        assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-4000:]
        assert "training a model (no exported model yet)" in up.stdout
        steps = [line.split(":")[0] for line in up.stdout.splitlines() if line.startswith("==> ")]
        assert steps[1:6] == [f"==> {s}" for s in ("ingest", "preprocess", "train", "evaluate", "export")]

        # Each stage left its output in the checkout, and the export passed the promotion gate.
        evaluated = json.loads((checkout / "metrics.json").read_text())
        exported = json.loads((checkout / "artifacts" / "export" / "export.json").read_text())
        assert exported["mlflow_run_id"] == evaluated["run_id"]  # the run trained and evaluated here
        assert exported["test_metrics"]["test_accuracy"] >= 0.8 and not exported["forced"], exported
        version = str(exported["triton_version"])
        assert (checkout / "model_repository" / "cats_dogs" / version / "model.onnx").is_file()
        assert (checkout / "build" / "model_repository_cpu" / "cats_dogs" / version).is_dir()

        # What is served is that export, and it classifies photos it was not trained on.
        gateway = f"http://127.0.0.1:{ports['gateway']}"
        assert f"Serving at      {gateway}" in up.stdout
        assert f"cats_dogs version {version} (Triton)" in up.stdout
        with urllib.request.urlopen(f"{gateway}/health", timeout=10) as response:
            model = json.loads(response.read())["model"]
        assert model["version"] == version
        assert model["parameters"]["mlflow_run_id"] == exported["mlflow_run_id"]
        import httpx

        correct = 0
        with httpx.Client(base_url=gateway, timeout=30) as http:
            for index in range(10):
                for label in ("cat", "dog"):
                    answer = http.post("/predict", files={"file": ("pet", synthetic_upload(label, index))})
                    assert answer.status_code == 200, answer.text
                    assert answer.headers.get("X-Cache") != "hit"
                    correct += answer.json()["predicted_class"] == label
        assert correct >= 16, f"{correct}/20 unseen synthetic photos classified correctly"
    finally:
        pids = [int(p.read_text()) for p in run_dir.glob("*.pid")]
        stop = subprocess.run(
            [sys.executable, "-m", "serving.stop", "--run-dir", str(run_dir)],
            cwd=checkout, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert not any(is_running(p) for p in pids)
