"""The gateway as a background process (``make gateway``): ``python -m serving.gateway_process start|stop``.

It runs ``python -m gateway`` with settings passed through the environment, records its PID in
``run/gateway.pid`` and waits until it answers; ``make stop`` uses the PID file.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from contract.model import MODEL_NAME
from contract.paths import RUN_DIR
from imaging.cli import ArgumentParser
from serving.processes import http_ok, read_pid, stop_by_pid_file, wait_http_ok, write_pid
from serving.triton import DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT


@dataclass(frozen=True, kw_only=True)
class GatewayOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    triton_url: str = f"127.0.0.1:{DEFAULT_GRPC_PORT}"
    triton_protocol: str = "grpc"
    model_name: str = MODEL_NAME
    log_file: Path = RUN_DIR / "gateway.log"
    pid_file: Path = RUN_DIR / "gateway.pid"
    timeout_s: float = 60.0
    wait_ready: bool = True

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def start_gateway(options: GatewayOptions) -> int:
    running = read_pid(options.pid_file)
    if running is not None:
        raise RuntimeError(f"gateway already running (pid {running}, {options.pid_file}); `make stop` first")
    if http_ok(options.url + "/health/live"):
        # Someone else's gateway: waiting for "ready" below would take its answer for ours.
        raise RuntimeError(f"{options.url} already answers (another gateway?); stop it or choose --port")
    env = dict(os.environ)
    env.update(
        {
            "HOST": options.host,
            "PORT": str(options.port),
            "TRITON_URL": options.triton_url,
            "TRITON_PROTOCOL": options.triton_protocol,
            "MODEL_NAME": options.model_name,
        }
    )
    options.log_file.parent.mkdir(parents=True, exist_ok=True)
    with options.log_file.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    write_pid(options.pid_file, process.pid)
    path = "/health/ready" if options.wait_ready else "/health/live"
    try:
        wait_http_ok(
            options.url + path,
            timeout_s=options.timeout_s,
            pid=process.pid,
            log_file=options.log_file,
            what="gateway",
        )
    except Exception:
        stop_by_pid_file(options.pid_file)
        raise
    return process.pid


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m serving.gateway_process",
        description="Run the gateway in the background.",
        epilog="""examples:
  python -m serving.gateway_process start --port 8000
  python -m serving.gateway_process status
  python -m serving.gateway_process stop""",
    )
    parser.add_argument("action", choices=["start", "stop", "status"], help="what to do")
    parser.add_argument("--host", default="127.0.0.1", help="address the gateway binds")
    parser.add_argument("--port", type=int, default=8000, help="gateway port")
    parser.add_argument(
        "--triton-protocol", choices=["grpc", "http"], default="grpc", help="how the gateway talks to Triton"
    )
    parser.add_argument(
        "--triton-url",
        default=None,
        help=f"Triton host:port (default 127.0.0.1:{DEFAULT_GRPC_PORT} for gRPC, "
        f"127.0.0.1:{DEFAULT_HTTP_PORT} for HTTP)",
    )
    parser.add_argument("--model", default=MODEL_NAME, help="Triton model name")
    parser.add_argument(
        "--log-file", type=Path, default=RUN_DIR / "gateway.log", help="gateway log (JSON lines)"
    )
    parser.add_argument("--pid-file", type=Path, default=RUN_DIR / "gateway.pid", help="PID file")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the gateway")
    parser.add_argument(
        "--wait-ready",
        action="store_true",
        help="wait until Triton and the model are ready too (default: return once the gateway is live)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.port <= 65535:
        print(f"error: --port must be 1..65535, got {args.port}", file=sys.stderr)
        return 2
    default_port = DEFAULT_GRPC_PORT if args.triton_protocol == "grpc" else DEFAULT_HTTP_PORT
    options = GatewayOptions(
        host=args.host,
        port=args.port,
        triton_url=args.triton_url or f"127.0.0.1:{default_port}",
        triton_protocol=args.triton_protocol,
        model_name=args.model,
        log_file=args.log_file,
        pid_file=args.pid_file,
        timeout_s=args.timeout,
        wait_ready=args.wait_ready,
    )
    if args.action == "stop":
        print(stop_by_pid_file(options.pid_file))
        return 0
    if args.action == "status":
        pid = read_pid(options.pid_file)
        print(f"gateway: running (pid {pid}) at {options.url}" if pid else "gateway: not running")
        return 0 if pid else 1
    try:
        pid = start_gateway(options)
    except (RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    state = "ready" if options.wait_ready or http_ok(options.url + "/health/ready") else "live, NOT ready yet"
    print(
        f"gateway {state} (pid {pid}) at {options.url} → Triton {options.triton_url}; log {options.log_file}"
    )
    if state != "ready":
        print("  it keeps checking Triton; see GET /health for why (is Triton running? `make triton`)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
