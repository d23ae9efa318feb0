"""Shared helpers for the deployment tests: the validator module, rendered manifests, Dockerfile stages."""

from __future__ import annotations

import functools
import importlib.util
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
# What a deployment test may break in its own copy of the repository.
DEPLOY_PATHS = (
    "k8s",
    "docker",
    "docker-compose.yml",
    "docker-compose.cpu.yml",
    ".github",
    "monitoring",
    "scripts/deploy.sh",
    "scripts/gen_k8s_monitoring.py",
)


def _load_validator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("validate_deploy", ROOT / "scripts" / "validate_deploy.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["validate_deploy"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


vd = _load_validator()


def copy_repo(dest: Path) -> Path:
    for rel in DEPLOY_PATHS:
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel)
        else:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@functools.cache
def rendered(kustomization: str) -> tuple[dict[str, Any], ...]:
    return tuple(vd.render_kustomization(ROOT / kustomization))


def find(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    (match,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return match


def load_yaml(rel: str) -> Any:
    return yaml.safe_load((ROOT / rel).read_text())


# --- Dockerfiles -----------------------------------------------------------------------------------
@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def dockerfile_lines(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuations joined and comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    )
    lines = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            lines.append((keyword.upper(), " ".join(rest.split())))
    return lines


def dockerfile_stages(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, base images with those defaults substituted."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, rest in dockerfile_lines(path.read_text()):
        if keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages and keyword == "ARG":
            key, _, default = rest.partition("=")
            global_args[key] = default
        elif stages:
            stages[-1].instructions.append((keyword, rest))
    return global_args, stages
