"""The gateway in-process under uvicorn (the real HTTP stack, no subprocess) and its test settings."""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvicorn

from gateway import Settings, create_app
from gateway.__main__ import server_options
from serving.processes import free_port


class GatewayServer:
    """uvicorn in a thread: the real HTTP stack (disconnects, multipart) without a process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, **{**server_options(settings), "log_level": "warning"}, lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, name="gateway", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    def __enter__(self) -> GatewayServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def gateway_settings(triton_grpc_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "triton_url": triton_grpc_url,
        "triton_protocol": "grpc",
        "port": free_port(),
        "model_refresh_s": 0.5,
        "max_upload_bytes": 2 * 1024 * 1024,
        "max_pixels": 4_000_000,
        # Each gateway gets its own prediction log, never the checkout's run/ folder.
        "tracking_db": Path(tempfile.mkdtemp(prefix="gw-tracking-")) / "predictions.db",
        "stats_snapshot_path": "",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def wait_ready(client: httpx.Client, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/health/ready").status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"gateway not ready after {timeout_s} s: {client.get('/health').json()}")


@contextlib.contextmanager
def ready_client(url: str, timeout_s: float = 30.0) -> Iterator[httpx.Client]:
    """An HTTP client on the gateway at ``url``, handed out once it answers ``/health/ready``."""
    with httpx.Client(base_url=url, timeout=30) as http:
        wait_ready(http, timeout_s)
        yield http
