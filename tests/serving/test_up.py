"""make up / make stop: an exported model is served by Triton + gateway in the background, then stopped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from serving.processes import PROJECT_ROOT, is_running
from serving.up import (
    DEFAULT_QUICK_CONFIG,
    DEFAULT_REAL_CONFIG,
    describe_origin,
    exported_versions,
    pipeline_steps,
    recipe_for,
    served_figures,
)


def test_exported_versions(tmp_path: Path, trivial_repository: Path) -> None:
    assert exported_versions(tmp_path / "nowhere", "cats_dogs") == []
    (trivial_repository / "cats_dogs" / "10").mkdir()
    assert exported_versions(trivial_repository, "cats_dogs") == [1, 10]


def test_pipeline_runs_every_stage_in_order_with_the_quick_config(tmp_path: Path) -> None:
    config = tmp_path / "quick.yaml"
    config.write_text("model: simple_cnn\nimage_size: 96\nepochs: 1\n")
    steps = pipeline_steps("/photos", config)
    assert [name for name, _ in steps] == ["ingest", "preprocess", "train", "evaluate", "export"]
    ingest, train = steps[0][1], steps[2][1]
    assert ingest[-2:] == ["--source", "/photos"]
    assert train[-2:] == ["--config", str(config)]
    assert steps[1][1][-2:] == ["--image-size", "96"]  # the cache is built at the size training reads
    assert all(command[0] == sys.executable for _, command in steps)


def test_the_bundled_model_is_registered_and_exported_without_training() -> None:
    steps = pipeline_steps("bundled", DEFAULT_REAL_CONFIG)
    assert [name for name, _ in steps] == ["register", "export"]
    assert steps[0][1][1:] == ["-m", "training.bundled", "register"]
    # The normal export path (parity + promotion gate), gated on the figures recorded with the model.
    assert steps[1][1][1:] == ["-m", "export", "--alias", "champion", "--no-local-data"]


def test_real_photos_get_the_real_recipe_unless_a_config_is_given(tmp_path: Path) -> None:
    assert recipe_for("synthetic", None) == DEFAULT_QUICK_CONFIG
    assert recipe_for("/my/photos", None) == DEFAULT_REAL_CONFIG
    assert recipe_for("download", None) == DEFAULT_REAL_CONFIG
    mine = tmp_path / "mine.yaml"
    assert recipe_for("/my/photos", mine) == mine
    assert recipe_for("synthetic", mine) == mine


def test_train_only_folders_reach_ingest(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("image_size: 96\n")
    ingest = pipeline_steps("/photos", config, [Path("/more")])[0][1]
    assert ingest[-4:] == ["--source", "/photos", "--train-only", "/more"]


def test_banner_reports_the_served_versions_measured_accuracy(tmp_path: Path) -> None:
    (tmp_path / "versions.json").write_text(
        json.dumps(
            {
                "versions": [
                    {"triton_version": 1, "test_metrics": {"test_accuracy": 0.5}, "metrics_source": "x"},
                    {
                        "triton_version": 2,
                        "test_metrics": {"test_accuracy": 0.923, "test_images": 0.0},
                        "metrics_source": "mlflow-run",
                    },
                ]
            }
        )
    )
    assert served_figures(tmp_path, 2) == "test accuracy 92.3% (recorded with the model in MLflow)"
    assert "unknown" in served_figures(tmp_path, 3)
    assert "unknown" in served_figures(tmp_path / "nowhere", 1)


def test_origin_names_the_registry_version() -> None:
    text = describe_origin({"mlflow_model_name": "cats-dogs-classifier", "model_version_mlflow": "3"})
    assert "cats-dogs-classifier version 3" in text


@pytest.mark.triton
@pytest.mark.slow
def test_up_serves_an_exported_model_and_stop_stops_it(
    tmp_path: Path, trivial_repository: Path, ports: dict[str, int]
) -> None:
    run_dir = tmp_path / "run"
    env = {**os.environ, "MODEL_REFRESH_S": "0.5"}  # the gateway notices a new version quickly
    up = subprocess.run(
        [
            sys.executable,
            "-m",
            "serving.up",
            "--repository",
            str(trivial_repository),
            "--port",
            str(ports["gateway"]),
            "--triton-grpc-port",
            str(ports["grpc"]),
            "--triton-http-port",
            str(ports["http"]),
            "--triton-metrics-port",
            str(ports["metrics"]),
            "--run-dir",
            str(run_dir),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=PROJECT_ROOT,
        env=env,
    )
    pids = [
        int((run_dir / f"{name}.pid").read_text())
        for name in ("gateway", "triton")
        if (run_dir / f"{name}.pid").exists()
    ]
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "using the exported model" in up.stdout  # no training: a model was already exported
        assert f"Serving at      http://127.0.0.1:{ports['gateway']}" in up.stdout
        assert "cats_dogs version 1" in up.stdout
        assert "trivial-test-model" in up.stdout  # where the model came from
        assert len(pids) == 2 and all(is_running(p) for p in pids)
        ready = f"http://127.0.0.1:{ports['gateway']}/health/ready"
        with urllib.request.urlopen(ready, timeout=10) as response:
            assert json.loads(response.read())["model_version"] == "1"

        # A new export lands as version 2; `serving.triton reload` makes it live, the gateway follows.
        shutil.copytree(trivial_repository / "cats_dogs" / "1", trivial_repository / "cats_dogs" / "2")
        reload = subprocess.run(
            [sys.executable, "-m", "serving.triton", "reload", "--http-port", str(ports["http"])],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=PROJECT_ROOT,
        )
        assert reload.returncode == 0, reload.stderr
        deadline = time.monotonic() + 30
        version = None
        not_ready: list[str] = []
        while time.monotonic() < deadline and version != "2":
            time.sleep(0.3)
            try:
                with urllib.request.urlopen(ready, timeout=10) as response:
                    version = json.loads(response.read()).get("model_version")
            except urllib.error.HTTPError as exc:
                not_ready.append(json.loads(exc.read())["detail"])
        assert version == "2"
        # Triton serves version 1 until version 2 is loaded: the switch never makes the gateway unready.
        assert not_ready == []
    finally:
        stop = subprocess.run(
            [sys.executable, "-m", "serving.stop", "--run-dir", str(run_dir)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=PROJECT_ROOT,
        )
    assert stop.returncode == 0
    assert "gateway: stopped" in stop.stdout and "triton: stopped" in stop.stdout, stop.stdout
    assert not any(is_running(p) for p in pids)
