"""The DVC pipeline: `dvc repro` (what `make dvc-repro` runs: every stage of dvc.yaml) on a tiny
synthetic set succeeds through the export, and a second run is a no-op."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DVC = str(BIN / "dvc")
REPRO = [DVC, "repro"]  # as `make dvc-repro`


def _tiny_pipeline(root: Path) -> None:
    """The project's dvc.yaml/params.yaml and code in a fresh git+DVC repo, sized to run in seconds."""
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(PROJECT_ROOT / name, root / name)
    for package in ("contract", "training", "imaging", "export"):
        shutil.copytree(PROJECT_ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["image_size"] = 32
    params["synthesize"]["count"] = 30
    params["train"].update(epochs=1, batch_size=16)
    # One epoch on 60 images is no classifier: the floor is lifted so the stage's wiring is what is
    # tested (the gate itself: tests/export/test_gate_and_versions.py).
    params["export"]["min_accuracy"] = 0.0
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([DVC, "init", "-q"], cwd=root, check=True)
    subprocess.run([DVC, "config", "core.analytics", "false"], cwd=root, check=True)


def _run(args: list[str], root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_dvc_repro_runs_every_stage_through_the_export_and_a_second_run_is_a_no_op(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    _tiny_pipeline(root)
    env = {
        **os.environ,
        # The stages call `python`: the interpreter running the tests, with torch and mlflow.
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLFLOW_ARTIFACT_ROOT": (tmp_path / "mlartifacts").as_uri(),
        "DVC_NO_ANALYTICS": "1",
    }

    first = _run(REPRO, root, env)
    assert first.returncode == 0, first.stdout + first.stderr
    for stage in ("synthesize", "ingest", "preprocess", "train", "evaluate", "export"):
        assert f"Running stage '{stage}'" in first.stdout
    # The export stage wrote the served version, its CPU-repository copy and the fixed-path DVC output.
    assert (root / "model_repository" / "cats_dogs" / "1" / "model.onnx").is_file()
    assert (root / "build" / "model_repository_cpu" / "cats_dogs" / "config.pbtxt").is_file()
    assert (root / "artifacts" / "export" / "model.onnx").is_file()
    assert json.loads((root / "artifacts" / "export" / "export.json").read_text())["triton_version"] == 1
    assert (root / "artifacts" / "checkpoints" / "last.pt").is_file()
    assert (root / "data" / "cache" / "32").is_dir()
    assert (root / "dvc.lock").is_file()
    metrics = _run([DVC, "metrics", "show", "--json"], root, env)
    assert '"accuracy"' in metrics.stdout

    second = _run(REPRO, root, env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Running stage" not in second.stdout
    status = _run([DVC, "status"], root, env)
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout


def _outputs() -> list[str]:
    """Every out/metrics/plots path of the project's dvc.yaml, with ${image_size} resolved."""
    pipeline = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    paths = []
    for stage in pipeline["stages"].values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):
                path = next(iter(entry)) if isinstance(entry, dict) else entry
                paths.append(path.replace("${image_size}", str(params["image_size"])))
    return paths


def test_pipeline_outputs_are_not_tracked_by_git_and_mlflow_is_not_an_output() -> None:
    outputs = _outputs()
    assert "artifacts/checkpoints/last.pt" in outputs and "metrics.json" in outputs
    assert not any(p.startswith(("mlflow.db", "mlartifacts")) for p in outputs)
    tracked = subprocess.run(
        ["git", "ls-files", "--", *outputs], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert tracked == ""


def test_pipeline_stages_chain_ingest_preprocess_train_evaluate_export() -> None:
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    assert list(stages)[-5:] == ["ingest", "preprocess", "train", "evaluate", "export"]
    assert "data/manifest.csv" in stages["preprocess"]["deps"]
    assert "artifacts/checkpoints/last.pt" in stages["evaluate"]["deps"]
