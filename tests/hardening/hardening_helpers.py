"""Hardening-test helpers shared by this folder's conftest and test modules.

A named module (not ``conftest``): a conftest is pytest's to import, and importing it from a test
would load a second copy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from serving.processes import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class GatewayProcess:
    """``python -m gateway`` in its own process: RSS is its own, logs go to ``log_file``."""

    process: subprocess.Popen[bytes]
    url: str
    log_file: Path

    def rss(self) -> int:
        return int(psutil.Process(self.process.pid).memory_info().rss)

    def alive(self) -> bool:
        return self.process.poll() is None


def start_gateway_process(triton_grpc_url: str, log_file: Path, **env: str) -> GatewayProcess:
    port = free_port()
    environment = dict(os.environ)
    environment.update(
        {
            "TRITON_URL": triton_grpc_url,
            "TRITON_PROTOCOL": "grpc",
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "MODEL_REFRESH_S": "0.5",
            # The default settings (tracking, prediction log and response cache on), as users run it;
            # only the log's files move to the test's folder.
            "TRACKING_DB": str(log_file.parent / "predictions.db"),
            "STATS_SNAPSHOT_PATH": str(log_file.parent / "stats.json"),
            **env,
        }
    )
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway"],
            env=environment,
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    gateway = GatewayProcess(process, f"http://127.0.0.1:{port}", log_file)
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=gateway.url, timeout=5) as http:
        while time.monotonic() < deadline:
            if not gateway.alive():
                raise RuntimeError(f"gateway exited: {log_file.read_text()[-2000:]}")
            try:
                if http.get("/health/ready").status_code == 200:
                    return gateway
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    stop_gateway_process(gateway)
    raise RuntimeError(f"gateway not ready in 60 s: {log_file.read_text()[-2000:]}")


def stop_gateway_process(gateway: GatewayProcess) -> None:
    gateway.process.terminate()
    try:
        gateway.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        gateway.process.kill()
        gateway.process.wait()
