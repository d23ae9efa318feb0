"""scripts/deploy.sh: clear errors where Docker, Compose, kubectl or a cluster is missing.

The script runs from a copy of the repository, so the project's own .venv/bin/kubectl and any
exported model are invisible unless a test provides them. Docker is a recording stand-in where a
test needs a working engine (none exists here); kubectl is the real one.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.deploy.deploy_helpers import ROOT, replace_in, vd

# What the script itself calls besides docker/kubectl.
BASE_TOOLS = ("bash", "dirname", "sed")


def tool_dir(tmp_path: Path, *extra: str) -> Path:
    """A PATH folder with only the basic tools (and `extra` real tools) linked in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in (*BASE_TOOLS, *extra):
        found = vd.find_tool(name)
        assert found, f"{name} is needed by this test"
        link = bin_dir / name
        if not link.exists():
            link.symlink_to(found)
    return bin_dir


def fake_docker(bin_dir: Path, log: Path, *, engine: bool = True, compose: bool = True) -> None:
    script = bin_dir / "docker"
    script.write_text(
        "#!/bin/bash\n"
        f'echo "$*" >> {log}\n'
        f'if [ "$1" = info ]; then exit {0 if engine else 1}; fi\n'
        f'if [ "$1 $2" = "compose version" ]; then exit {0 if compose else 1}; fi\n'
        "exit 0\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def run(repo: Path, bin_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": str(bin_dir), "HOME": str(repo), "KUBECONFIG": str(repo / "no-kubeconfig"), **env}
    return subprocess.run(
        ["bash", str(repo / "scripts/deploy.sh"), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def test_script_passes_shellcheck() -> None:
    result = vd.check_shell()
    assert result.ok, "\n".join(result.problems)


def test_shellcheck_can_fail(repo_copy: Path) -> None:
    replace_in(repo_copy / "scripts/deploy.sh", 'cd "$(dirname "$0")/.."', "cd $(dirname $0)/..")
    assert not vd.check_shell(repo_copy).ok


@pytest.mark.parametrize("command", ["build", "run", "compose-up"])
def test_missing_docker_is_named(repo_copy: Path, tmp_path: Path, command: str) -> None:
    result = run(repo_copy, tool_dir(tmp_path), command)
    assert result.returncode == 3
    assert f"docker is not installed; '{command}' needs Docker Engine" in result.stderr


def test_unreachable_engine_is_named(repo_copy: Path, tmp_path: Path) -> None:
    bin_dir = tool_dir(tmp_path)
    fake_docker(bin_dir, tmp_path / "docker.log", engine=False)
    result = run(repo_copy, bin_dir, "build")
    assert result.returncode == 3 and "cannot reach a Docker engine" in result.stderr


def test_missing_compose_plugin_is_named(repo_copy: Path, tmp_path: Path) -> None:
    bin_dir = tool_dir(tmp_path)
    fake_docker(bin_dir, tmp_path / "docker.log", compose=False)
    result = run(repo_copy, bin_dir, "compose-up")
    assert result.returncode == 3 and "Docker Compose v2 plugin is missing" in result.stderr


def test_compose_up_needs_grafana_credentials_and_a_model(repo_copy: Path, tmp_path: Path) -> None:
    bin_dir = tool_dir(tmp_path)
    log = tmp_path / "docker.log"
    fake_docker(bin_dir, log)
    result = run(repo_copy, bin_dir, "compose-up")
    assert result.returncode == 2 and "GRAFANA_ADMIN_PASSWORD" in result.stderr
    creds = {"GRAFANA_ADMIN_USER": "ops", "GRAFANA_ADMIN_PASSWORD": "s3cret-value"}
    result = run(repo_copy, bin_dir, "compose-up", **creds)
    assert result.returncode == 4 and "make export-onnx" in result.stderr
    version = repo_copy / "build/model_repository_cpu/cats_dogs/1"
    version.mkdir(parents=True)
    (version / "model.onnx").write_bytes(b"onnx")
    result = run(repo_copy, bin_dir, "compose-up", MONITORING="1", **creds)
    assert result.returncode == 0, result.stderr
    # No nvidia-smi on this PATH: the CPU override, plus the monitoring profile.
    assert (
        "compose -f docker-compose.yml -f docker-compose.cpu.yml --profile monitoring up -d --build --wait"
        in log.read_text()
    )


def test_build_builds_the_three_images(repo_copy: Path, tmp_path: Path) -> None:
    bin_dir = tool_dir(tmp_path)
    log = tmp_path / "docker.log"
    fake_docker(bin_dir, log)
    result = run(repo_copy, bin_dir, "build")
    assert result.returncode == 0, result.stderr
    builds = [line for line in log.read_text().splitlines() if line.startswith("build ")]
    assert [b.split()[2] for b in builds] == [
        "docker/gateway.Dockerfile",
        "docker/trainer.Dockerfile",
        "docker/triton.Dockerfile",
    ]
    for build in builds:
        assert (repo_copy / build.split()[2]).is_file()


def test_missing_kubectl_is_named(repo_copy: Path, tmp_path: Path) -> None:
    result = run(repo_copy, tool_dir(tmp_path), "deploy-k8s", "gpu")
    assert result.returncode == 3 and "kubectl is not installed" in result.stderr


def test_kubectl_without_a_cluster_is_named(repo_copy: Path, tmp_path: Path) -> None:
    result = run(repo_copy, tool_dir(tmp_path, "kubectl"), "deploy-k8s", "cpu")
    assert result.returncode == 3 and "kubectl has no current context" in result.stderr


def test_render_needs_no_cluster(repo_copy: Path, tmp_path: Path) -> None:
    result = run(repo_copy, tool_dir(tmp_path, "kubectl"), "render-k8s", "gpu")
    assert result.returncode == 0, result.stderr
    assert "nvidia.com/gpu: 1" in result.stdout and "name: gateway" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bogus"], "unknown command 'bogus'"),
        (["deploy-k8s", "tpu"], "overlay must be gpu or cpu"),
        (["build", "everything"], "build what?"),
        ([], "Container and Kubernetes entry points"),
    ],
)
def test_usage_errors_exit_2(repo_copy: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = run(repo_copy, tool_dir(tmp_path, "kubectl"), *args)
    assert result.returncode == 2 and message in result.stderr


def test_script_is_executable() -> None:
    # make targets call it directly; git keeps the mode bit.
    assert os.access(ROOT / "scripts/deploy.sh", os.X_OK)
