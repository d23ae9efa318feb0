"""The `export` DVC stage (in dvc.yaml, after evaluate) follows evaluate and tracks the code it runs."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# Modules the export command does not run: helpers of other commands.
NOT_RUN_BY_EXPORT = {
    "__init__.py",
    "__main__.py",
    "rollback.py",
    "pull.py",
    "promote.py",
    "ort_cpu.py",
}


def _stage() -> dict[str, object]:
    stage: dict[str, object] = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["export"]
    return stage


def test_stage_follows_evaluate_and_writes_the_fixed_copy() -> None:
    stage = _stage()
    evaluate = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["evaluate"]
    evaluate_outputs = [next(iter(m)) if isinstance(m, dict) else m for m in evaluate["metrics"]]
    deps = stage["deps"]
    assert isinstance(deps, list) and set(evaluate_outputs) <= set(deps)
    assert stage["outs"] == ["artifacts/export"] and "wdir" not in stage  # paths from the project root
    assert "--artifact-dir artifacts/export" in str(stage["cmd"]) and "--alias champion" in str(stage["cmd"])


def test_every_module_the_export_runs_is_a_dependency() -> None:
    deps = set(_stage()["deps"])  # type: ignore[call-overload]
    modules = {f"export/{p.name}" for p in (ROOT / "export").glob("*.py") if p.name not in NOT_RUN_BY_EXPORT}
    assert modules - deps == set()
    assert all((ROOT / d).exists() for d in deps if d.startswith(("export/", "training/")))


def test_gate_floor_is_a_pipeline_parameter() -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert 0.0 <= params["export"]["min_accuracy"] <= 1.0
    assert _stage()["params"] == ["export"]
