"""make gateway: the gateway starts in the background even before Triton, and stops by its PID file."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from serving.processes import PROJECT_ROOT, is_running


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving.gateway_process", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )


def test_gateway_without_triton_is_live_not_ready(tmp_path: Path, ports: dict[str, int]) -> None:
    common = [
        "--port",
        str(ports["gateway"]),
        "--triton-url",
        f"127.0.0.1:{ports['grpc']}",  # nothing listens there
        "--pid-file",
        str(tmp_path / "gateway.pid"),
        "--log-file",
        str(tmp_path / "gateway.log"),
    ]
    started = _cli("start", *common)
    pid = int((tmp_path / "gateway.pid").read_text()) if (tmp_path / "gateway.pid").exists() else None
    try:
        assert started.returncode == 0, started.stderr
        assert "NOT ready" in started.stdout
        base = f"http://127.0.0.1:{ports['gateway']}"
        with urllib.request.urlopen(base + "/health/live", timeout=10) as response:
            assert json.loads(response.read()) == {"status": "alive"}
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(base + "/health/ready", timeout=10)
        assert caught.value.code == 503
        assert _cli("status", *common).returncode == 0
        # Every log line is JSON (structlog for the app, the same renderer for uvicorn).
        lines = [ln for ln in (tmp_path / "gateway.log").read_text().splitlines() if ln.strip()]
        assert lines and all(json.loads(ln)["event"] for ln in lines)
    finally:
        stopped = _cli("stop", *common)
    assert "stopped" in stopped.stdout
    assert pid is not None and not is_running(pid)
