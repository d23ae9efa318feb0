"""The package layers are a checked rule: `make lint` runs lint-imports with pyproject's contracts.

These tests run the same tool on the real tree (it must pass) and on a copy with one import added
that breaks a rule (it must fail, naming the contract), so a contract that cannot fail is caught.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def root_packages() -> list[str]:
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    return list(config["tool"]["importlinter"]["root_packages"])


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_tree_keeps_its_layers() -> None:
    result = lint_imports(PROJECT_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        ("gateway/settings.py", "import training.config", "serving-path-is-torch-free"),
        ("scoring/pipeline.py", "import torch", "serving-path-is-torch-free"),
        ("export/pipeline.py", "import serving.triton", "export-below-serving"),
        ("training/config.py", "import benchmarks.report", "layers"),
        ("tracking/store.py", "import gateway.settings", "layers"),
        ("contract/paths.py", "import imaging.decode", "layers"),
    ],
)
def test_a_broken_import_fails_the_check(tmp_path: Path, module: str, bad_import: str, contract: str) -> None:
    for package in root_packages():
        shutil.copytree(
            PROJECT_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{bad_import}  # deliberately breaks a layer\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0, result.stdout
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    names = {c["id"]: c["name"] for c in config["tool"]["importlinter"]["contracts"]}
    broken = result.stdout.split("Broken contracts", 1)[-1]
    # The report wraps long names at 80 columns: compare the name's first words.
    assert names[contract].split(":")[0][:40] in broken.replace("\n", " "), result.stdout
    importer = module.removesuffix(".py").replace("/", ".")
    assert f"{importer} -> {bad_import.split()[-1]}" in broken, result.stdout
