"""The real Triton server bundled in the ``nvidia-pytriton`` wheel, started on a local repository.

``python -m serving.triton start|stop|status``. The same :class:`TritonLauncher` is used by
``make triton``, ``make up`` and the integration-test fixture, so tests run the server users run.
What this needs (stub copy, library path, numpy<2 backend venv, GPU-probe flags) is set up
below, each with its reason where it is done.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from contract.model import CONFIG_FILENAME, MODEL_NAME
from contract.paths import CPU_MODEL_REPOSITORY, RUN_DIR, TRITON_BACKENDS_DIR, TRITON_VENV
from imaging.cli import ArgumentParser
from serving.processes import http_ok, read_pid, stop_by_pid_file, wait_http_ok, write_pid

# The gateway owns 8000; Triton's own HTTP port moves aside, gRPC and metrics keep Triton's defaults.
DEFAULT_HTTP_PORT = 8010
DEFAULT_GRPC_PORT = 8001
DEFAULT_METRICS_PORT = 8002
PYTHON_VERSION = "3.11"


@dataclass(frozen=True, kw_only=True)
class TritonOptions:
    repository: Path = CPU_MODEL_REPOSITORY
    model: str = MODEL_NAME
    http_port: int = DEFAULT_HTTP_PORT
    grpc_port: int = DEFAULT_GRPC_PORT
    metrics_port: int = DEFAULT_METRICS_PORT
    host: str = "127.0.0.1"
    backend_venv: Path = TRITON_VENV
    backends_dir: Path = TRITON_BACKENDS_DIR
    log_file: Path = RUN_DIR / "triton.log"
    pid_file: Path = RUN_DIR / "triton.pid"
    ready_timeout_s: float = 120.0
    # Unique per server so two servers (make up + a test run) never share python-backend memory.
    shm_prefix: str = field(default_factory=lambda: f"cd_{uuid.uuid4().hex[:10]}_")

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{PYTHON_VERSION}" / "site-packages"


def pytriton_dir(venv: Path) -> Path:
    path = site_packages(venv) / "pytriton" / "tritonserver"
    if not (path / "bin" / "tritonserver").is_file():
        raise FileNotFoundError(
            f"no Triton server in {venv} (expected {path}/bin/tritonserver). "
            "Run `make setup` to create the Triton venv from serving/requirements-triton.txt."
        )
    return path


def prepare_backends(venv: Path, backends_dir: Path) -> Path:
    """A backend directory holding the python backend with the stub for this Python version.

    The wheel ships the stubs apart from the backend; Triton looks for the stub next to
    ``libtriton_python.so``, so both are copied into a folder of ours (idempotent).
    """
    server = pytriton_dir(venv)
    target = backends_dir / "python"
    target.mkdir(parents=True, exist_ok=True)
    sources = [
        server / "backends" / "python" / "libtriton_python.so",
        server / "backends" / "python" / "triton_python_backend_utils.py",
        server / "python_backend_stubs" / PYTHON_VERSION / "triton_python_backend_stub",
    ]
    for source in sources:
        dest = target / source.name
        if not dest.exists() or dest.stat().st_mtime < source.stat().st_mtime:
            shutil.copy2(source, dest)
    return backends_dir


def server_command(options: TritonOptions) -> list[str]:
    binary = pytriton_dir(options.backend_venv) / "bin" / "tritonserver"
    return [
        str(binary),
        "--model-repository",
        str(options.repository.resolve()),
        "--backend-directory",
        str(options.backends_dir.resolve()),
        # Explicit control with the model named: a restarted server loads it again by itself,
        # and a repository change only goes live when asked (export / rollback), never half-written.
        "--model-control-mode",
        "explicit",
        "--load-model",
        options.model,
        # Server readiness must not flap while a new version loads (strict mode reports the server
        # unready during any model transition); model readiness is checked per model instead.
        "--strict-readiness",
        "false",
        "--exit-on-error",
        "true",
        "--http-address",
        options.host,
        "--http-port",
        str(options.http_port),
        "--grpc-address",
        options.host,
        "--grpc-port",
        str(options.grpc_port),
        "--metrics-address",
        options.host,
        "--metrics-port",
        str(options.metrics_port),
        "--allow-metrics",
        "true",
        # No GPU here: skip pinned memory and GPU metrics, which would only probe CUDA.
        "--allow-gpu-metrics",
        "false",
        "--pinned-memory-pool-byte-size",
        "0",
        "--backend-config",
        "python,shm-default-byte-size=4194304",
        "--backend-config",
        "python,shm-growth-byte-size=1048576",
        "--backend-config",
        f"python,shm-region-prefix-name={options.shm_prefix}",
        # Open client connections (a gateway) would otherwise hold shutdown for 30 s.
        "--exit-timeout-secs",
        "5",
        "--log-verbose",
        "0",
    ]


def server_env(options: TritonOptions, base: dict[str, str] | None = None) -> dict[str, str]:
    """Library path for libtritonserver and libpython; the backend venv's python3 first on PATH.

    The python backend stub imports numpy and onnxruntime through the first ``python3`` on PATH,
    which must be the numpy<2 backend venv, not the project venv.
    """
    env = dict(os.environ if base is None else base)
    venv = options.backend_venv.resolve()
    libs = [str(Path(sys.base_prefix) / "lib"), str(site_packages(venv) / "nvidia_pytriton.libs")]
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = ":".join(libs)
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    return env


def check_repository(options: TritonOptions) -> None:
    model_dir = options.repository / options.model
    if not (model_dir / CONFIG_FILENAME).is_file():
        raise FileNotFoundError(
            f"no model {options.model!r} in {options.repository} (missing {model_dir}/config.pbtxt). "
            "Export one first: `make export-onnx` (or `make up`, which trains and exports)."
        )


class TritonLauncher:
    """Start, wait for and stop one Triton server process."""

    def __init__(self, options: TritonOptions) -> None:
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else read_pid(self.options.pid_file)

    def start(self, *, wait: bool = True) -> int:
        """Start in the background (own session, survives this process), record the PID, wait for ready."""
        opts = self.options
        running = read_pid(opts.pid_file)
        if running is not None:
            raise RuntimeError(
                f"Triton already running (pid {running}, {opts.pid_file}); `make stop` or "
                "`python -m serving.triton stop` first"
            )
        check_repository(opts)
        prepare_backends(opts.backend_venv, opts.backends_dir)
        opts.log_file.parent.mkdir(parents=True, exist_ok=True)
        with opts.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                server_command(opts),
                env=server_env(opts),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        write_pid(opts.pid_file, self.process.pid)
        if wait:
            try:
                self.wait_ready()
            except Exception:
                self.stop()
                raise
        return self.process.pid

    def wait_ready(self) -> None:
        pid = self.pid
        if pid is None:
            raise RuntimeError("Triton is not running")
        wait_http_ok(
            f"{self.options.http_url}/v2/models/{self.options.model}/ready",
            timeout_s=self.options.ready_timeout_s,
            pid=pid,
            log_file=self.options.log_file,
            what="Triton",
        )

    def stop(self, *, timeout_s: float = 15.0) -> str:
        message = stop_by_pid_file(self.options.pid_file, timeout_s=timeout_s)
        if self.process is not None:
            # Reap our own child so it does not linger as a zombie.
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        return message


def reload_model(options: TritonOptions, timeout_s: float = 120.0) -> None:
    """Ask the running server to load the model again: new version directories go live, removed ones go.

    Explicit model control never rescans by itself, so a new export or a rollback takes effect only
    through this call (Triton keeps serving the old version until the new one is loaded).
    """
    url = f"{options.http_url}/v2/repository/models/{options.model}/load"
    request = urllib.request.Request(
        url, data=b"{}", method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            pass
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise RuntimeError(f"Triton refused to load {options.model!r}: {detail}") from exc
    except OSError as exc:
        raise RuntimeError(f"Triton is not reachable at {options.http_url}: {exc}") from exc


def reload_if_running(options: TritonOptions) -> str:
    """``make reload``: reload the model when a local Triton runs; a no-op saying so when none does.

    A server counts as running when its PID file names a live process or its HTTP port answers (a
    Triton started by hand or by a test has no PID file under ``run/``). With none, there is nothing
    to update: a Triton started later serves the repository as it is then.
    """
    if read_pid(options.pid_file) is None and not http_ok(f"{options.http_url}/v2/health/live"):
        return (
            f"no local Triton running (no PID in {options.pid_file}, nothing at {options.http_url}): "
            "nothing to reload; `make triton` / `make up` serves the repository as it is"
        )
    reload_model(options)
    return f"Triton reloaded {options.model!r} from {options.repository}"


def _options_from_args(args: argparse.Namespace) -> TritonOptions:
    return TritonOptions(
        repository=args.repository,
        model=args.model,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        backend_venv=args.backend_venv,
        backends_dir=args.backends_dir,
        log_file=args.log_file,
        pid_file=args.pid_file,
        ready_timeout_s=args.timeout,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m serving.triton",
        description="Start, stop or query the local Triton server.",
        epilog="""examples:
  python -m serving.triton start
  python -m serving.triton status
  python -m serving.triton reload    # after `make export-onnx` or `make rollback`""",
    )
    parser.add_argument(
        "action",
        choices=["start", "stop", "status", "reload"],
        help="what to do; reload = load the model again after an export or rollback (new versions go "
        "live; nothing to do when no local Triton runs)",
    )
    parser.add_argument(
        "--repository", type=Path, default=CPU_MODEL_REPOSITORY, help="model repository to serve"
    )
    parser.add_argument("--model", default=MODEL_NAME, help="model to load at start-up")
    parser.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT, help="Triton HTTP port")
    parser.add_argument("--grpc-port", type=int, default=DEFAULT_GRPC_PORT, help="Triton gRPC port")
    parser.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT, help="Triton metrics port")
    parser.add_argument(
        "--backend-venv",
        type=Path,
        default=TRITON_VENV,
        help="venv holding nvidia-pytriton and the python backend's packages (numpy<2, onnxruntime)",
    )
    parser.add_argument(
        "--backends-dir", type=Path, default=TRITON_BACKENDS_DIR, help="where the python backend is prepared"
    )
    parser.add_argument("--log-file", type=Path, default=RUN_DIR / "triton.log", help="server log file")
    parser.add_argument("--pid-file", type=Path, default=RUN_DIR / "triton.pid", help="PID file")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("http_port", "grpc_port", "metrics_port"):
        port = getattr(args, name)
        if not 1 <= port <= 65535:
            print(f"error: --{name.replace('_', '-')} must be 1..65535, got {port}", file=sys.stderr)
            return 2
    options = _options_from_args(args)
    launcher = TritonLauncher(options)
    if args.action == "stop":
        print(launcher.stop())
        return 0
    if args.action == "reload":
        try:
            print(reload_if_running(options))
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.action == "status":
        pid = read_pid(options.pid_file)
        if pid is None:
            print("triton: not running")
            return 1
        print(f"triton: running (pid {pid}), HTTP {options.http_url}, gRPC {options.grpc_url}")
        return 0
    try:
        pid = launcher.start()
    except (FileNotFoundError, RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"Triton ready (pid {pid}): HTTP {options.http_url}, gRPC {options.grpc_url}, "
        f"metrics {options.metrics_url}, model {options.model!r} from {options.repository}; "
        f"log {options.log_file}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
