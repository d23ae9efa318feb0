"""Dockerfiles: hadolint-clean, pinned, non-root, and consistent with compose, k8s and .dockerignore."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

from tests.deploy.deploy_helpers import ROOT, Stage, dockerfile_stages, find, load_yaml, rendered, vd

DOCKER = ROOT / "docker"
COMPILERS = re.compile(
    r"\b(gcc|g\+\+|clang|build-essential|cc|make|cmake|gfortran|libc6?-dev|python3?-dev)\b"
)


def final_stage(name: str, target: str | None = None) -> Stage:
    _, stages = dockerfile_stages(DOCKER / name)
    if target is None:
        return stages[-1]
    (stage,) = [s for s in stages if s.name == target]
    return stage


# --- hadolint, and proof that it can fail ----------------------------------------------------------
def test_dockerfiles_pass_hadolint() -> None:
    result = vd.check_dockerfiles(ROOT)
    assert result.ok, "\n".join(result.problems)


def test_latest_tag_and_unpinned_packages_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y gcc\nCMD python\n")
    problems = vd.check_dockerfiles(tmp_path, files=["bad.Dockerfile"]).problems
    assert any("DL3007" in p for p in problems), problems  # :latest
    assert any("DL3008" in p for p in problems), problems  # apt package without a version


# --- gateway image ---------------------------------------------------------------------------------------
def test_gateway_is_multi_stage_and_its_runtime_stage_has_no_compilers() -> None:
    args, stages = dockerfile_stages(DOCKER / "gateway.Dockerfile")
    assert [s.name for s in stages] == ["builder", "runtime"]
    runtime = stages[-1]
    assert runtime.base == args["PYTHON_IMAGE"] and "slim" in runtime.base
    for command in runtime.args("RUN"):
        assert not COMPILERS.search(command), command
        assert "apt-get install" not in command and "pip install" not in command
    assert runtime.args("COPY") == ["--from=builder /opt/venv /opt/venv"]


def test_gateway_runs_as_non_root_with_a_healthcheck() -> None:
    runtime = final_stage("gateway.Dockerfile")
    (user,) = runtime.args("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000
    (healthcheck,) = runtime.args("HEALTHCHECK")
    assert "/health/live" in healthcheck and "CMD" in healthcheck
    (entrypoint,) = runtime.args("ENTRYPOINT")
    assert entrypoint == '["python", "-m", "gateway"]'
    # The uid the image runs as is the uid Kubernetes and compose enforce.
    deployment = find(rendered("k8s/overlays/gpu"), "Deployment", "gateway")
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)
    assert load_yaml("docker-compose.yml")["services"]["gateway"]["user"] == user


# --- every image -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gateway.Dockerfile", "trainer.Dockerfile", "triton.Dockerfile"])
def test_base_images_are_pinned(name: str) -> None:
    _, stages = dockerfile_stages(DOCKER / name)
    names = {s.name for s in stages}
    for stage in stages:
        if stage.base in names:
            continue
        assert "$" not in stage.base, f"unresolved ARG in {stage.base}"
        image, _, tag = stage.base.rpartition(":")
        assert image and re.fullmatch(r"[\w.-]*\d[\w.-]*", tag) and tag != "latest", stage.base


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("gateway.Dockerfile", None),
        ("trainer.Dockerfile", None),
        ("triton.Dockerfile", "gpu"),
        ("triton.Dockerfile", "cpu-runtime"),
    ],
)
def test_final_stages_are_non_root(name: str, target: str | None) -> None:
    stage = final_stage(name, target)
    users = stage.args("USER")
    assert users, f"{name} {target or ''}: no USER"
    assert users[-1].split(":")[0] not in {"0", "root"}


def test_trainer_builds_cpu_and_cuda_and_trains_by_default() -> None:
    _, stages = dockerfile_stages(DOCKER / "trainer.Dockerfile")
    builder = stages[0]
    assert "ARG TORCH_VARIANT=cpu" in [f"ARG {a}" for a in builder.args("ARG")]
    (install,) = [r for r in builder.args("RUN") if "pip install" in r]
    assert "cpu)" in install and "cuda)" in install and "exit 2" in install
    runtime = stages[-1]
    assert runtime.args("ENTRYPOINT") == ['["python", "-m"]'] and runtime.args("CMD") == [
        '["training.train"]'
    ]


def test_triton_version_is_the_same_everywhere() -> None:
    args, stages = dockerfile_stages(DOCKER / "triton.Dockerfile")
    image = args["TRITON_IMAGE"]
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d{2}\.\d{2}-py3", image)
    assert {"cpu-runtime", "cpu", "gpu"} <= {s.name for s in stages}
    assert load_yaml("docker-compose.yml")["services"]["triton"]["image"] == image
    triton = find(rendered("k8s/overlays/gpu"), "Deployment", "triton")
    assert triton["spec"]["template"]["spec"]["containers"][0]["image"] == image
    for target in ("gpu", "cpu-runtime"):
        (cmd,) = final_stage("triton.Dockerfile", target).args("CMD")
        assert "--model-control-mode=none" in cmd and "--model-repository=/models" in cmd


def test_cpu_backend_requirements_keep_numpy_below_2() -> None:
    pins = dict(
        line.split("==")
        for line in (DOCKER / "triton-cpu-requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert int(pins["numpy"].split(".")[0]) < 2
    assert "onnxruntime" in pins


# --- build context -----------------------------------------------------------------------------------------
def dockerignore_allows(path: str) -> bool:
    """Docker's rule: the last matching line wins; a path is also excluded with its parent folder."""
    allowed = True
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        parts = path.rstrip("/").split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes) or (
            negate and pattern.startswith(path.rstrip("/") + "/")
        ):
            allowed = negate
    return allowed


def test_dockerignore_sends_what_the_images_copy_and_nothing_private() -> None:
    sources = set()
    for name in ("gateway.Dockerfile", "trainer.Dockerfile", "triton.Dockerfile"):
        for stage in dockerfile_stages(DOCKER / name)[1]:
            for copy in stage.args("COPY"):
                words = [w for w in copy.split() if not w.startswith("--")]
                if "--from=" not in copy:
                    sources.update(words[:-1])
    assert {"pyproject.toml", "gateway/", "model_repository/", "build/model_repository_cpu/"} <= sources
    for source in sources:
        assert dockerignore_allows(source), f".dockerignore excludes {source}, which a Dockerfile copies"
    for private in (
        "data/raw",
        ".venv/bin",
        "mlflow.db",
        "mlartifacts/1",
        "run/triton.log",
        ".env",
        ".git/config",
    ):
        assert not dockerignore_allows(private), f".dockerignore lets {private} into the build context"
