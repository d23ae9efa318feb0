"""The gateway image, built and run on this machine (scripts/images.sh: a local dockerd, the mmdebstrap
base when the registry base cannot be pulled) against the session's real Triton: ready, a real
prediction, non-root, read-only root with a tmpfs, a HEALTHCHECK that reaches healthy, and no torch.

Skipped (with the reason) only where no Docker engine can exist: no docker CLI/dockerd and not root.
.ci/run installs docker.io and mmdebstrap, so CI runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving.processes import free_port
from tests.support.photos import photo
from tests.support.triton import TritonFixture

# A cold build (no layer cache) took 13 min on this loaded 2-core machine; cached, seconds.
pytestmark = pytest.mark.timeout(1800)
ROOT = Path(__file__).resolve().parents[2]
IMAGE = "cats-dogs-gateway:test"


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def gateway_image() -> str:
    if shutil.which("docker") is None or (shutil.which("dockerd") is None and os.geteuid() != 0):
        pytest.skip("no Docker here: install Debian's docker.io (and mmdebstrap) as root, as .ci/run does")
    env = {**os.environ, "IMAGE_TAG": "test"}
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if ca.is_file():  # pip inside the build trusts what this host trusts (TLS-inspecting proxies)
        env.setdefault("EXTRA_CA", str(ca))
    started = time.monotonic()
    build = subprocess.run(
        [str(ROOT / "scripts" / "images.sh"), "gateway"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    print(f"gateway image built in {time.monotonic() - started:.0f} s: {build.stdout.strip()}")
    return IMAGE


@pytest.fixture
def container(gateway_image: str, triton: TritonFixture) -> Iterator[tuple[str, str]]:
    name = f"gw-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    run = docker(
        *("run", "-d", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp:rw,size=64m"),
        *("-e", f"TRITON_URL={triton.grpc_url}", "-e", f"PORT={port}", "-e", "HOST=127.0.0.1"),
        *("--health-interval", "2s", "--health-start-period", "5s"),
        gateway_image,
    )
    assert run.returncode == 0, run.stderr
    try:
        yield name, f"http://127.0.0.1:{port}"
    finally:
        logs = docker("logs", "--tail", "30", name)
        print(logs.stdout[-3000:], logs.stderr[-3000:])
        docker("rm", "-f", name)


def test_gateway_image_serves_predictions_non_root_read_only_and_healthy(container: tuple[str, str]) -> None:
    name, url = container
    deadline = time.monotonic() + 90
    with httpx.Client(base_url=url, timeout=10) as client:
        while True:
            try:
                if client.get("/health/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, docker("logs", name).stderr[-2000:]
            time.sleep(0.5)
        answer = client.post(
            "/predict",
            files={"file": ("pet.jpg", photo(777), "image/jpeg")},
            headers={"Cache-Control": "no-cache"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["predicted_class"] in {"cat", "dog"}

    uid = docker("exec", name, "id", "-u").stdout.strip()
    assert uid and uid != "0", uid
    inspect = json.loads(docker("inspect", name).stdout)[0]
    assert inspect["HostConfig"]["ReadonlyRootfs"] is True
    assert docker("exec", name, "touch", "/opt/venv/x").returncode != 0, "root filesystem is writable"
    torch = docker("exec", name, "python", "-c", "import importlib.util as u; print(u.find_spec('torch'))")
    assert torch.stdout.strip() == "None", torch.stdout + torch.stderr

    deadline = time.monotonic() + 60
    while (status := json.loads(docker("inspect", name).stdout)[0]["State"]["Health"]["Status"]) != "healthy":
        assert status != "unhealthy" and time.monotonic() < deadline, status
        time.sleep(1)
