"""Who may import what: contract/ stays standard-library only, and the gateway and model-puller images
carry every project package their entry points import (the images copy packages one by one)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def project_packages() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}


def modules_imported_by(statement: str) -> set[str]:
    """Modules a fresh interpreter loads for ``statement``, beyond what it loaded at start-up."""
    code = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        f"{statement}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def copied_packages(dockerfile: str) -> set[str]:
    """Top-level folders a Dockerfile COPYs from the build context (``COPY imaging/ imaging/``)."""
    copied = set()
    for line in (ROOT / "docker" / dockerfile).read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            copied.update(w.split("/")[0] for w in words[1:-1] if "/" in w)
    return copied


def test_contract_imports_only_the_standard_library() -> None:
    loaded = modules_imported_by("import contract.model, contract.paths, contract.model_info")
    outside = {m for m in loaded if m.split(".")[0] not in sys.stdlib_module_names | {"contract"}}
    assert not outside, f"contract/ must stay standard-library only (gateway image), imports {outside}"


def test_the_gateway_image_carries_every_project_package_the_gateway_imports() -> None:
    loaded = {m.split(".")[0] for m in modules_imported_by("import gateway.app")}
    imported = loaded & project_packages()
    assert "contract" in imported  # its ModelInfo and model names
    assert not imported & {"training", "export", "serving", "scoring", "benchmarks"}, imported
    missing = imported - copied_packages("gateway.Dockerfile")
    assert not missing, f"docker/gateway.Dockerfile does not COPY {missing}, which the gateway imports"
    assert "torch" not in loaded


def test_the_model_puller_needs_only_export_contract_and_training_registry() -> None:
    loaded = modules_imported_by("import export.pull")
    imported = {m.split(".")[0] for m in loaded} & project_packages()
    missing = imported - copied_packages("puller.Dockerfile")
    assert not missing, f"docker/puller.Dockerfile does not COPY {missing}, which export.pull imports"
    training = {m for m in loaded if m.split(".")[0] == "training"}
    assert training <= {"training", "training.registry"}, training  # the image copies only these
    assert "torch" not in loaded
