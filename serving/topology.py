"""A production topology in miniature, from real parts: nginx → N gateways → M Tritons, one PostgreSQL.

    python -m serving.topology --gateways 2 --tritons 2      # runs until Ctrl-C; prints the URLs

Every gateway shares one prediction log (``TRACKING_DATABASE_URL`` → a throwaway PostgreSQL from
Debian's package) and reaches every Triton through one balanced gRPC channel (``TRITON_URL`` = the
list of Triton gRPC addresses). nginx (Debian's package, config written to a temp dir) spreads
client requests over the gateways. The replica tests (tests/replicas/) drive the same class: kill
or SIGTERM a gateway, stop or restart a Triton, read each Triton's own request counters.
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from contract.model import CONFIG_FILENAME, MODEL_NAME
from contract.paths import CPU_MODEL_REPOSITORY, PROJECT_ROOT, TRITON_BACKENDS_DIR, TRITON_VENV
from serving.postgres import PostgresCluster
from serving.processes import free_port, is_running, wait_http_ok
from serving.triton import TritonLauncher, TritonOptions


@dataclass(kw_only=True)
class TopologyOptions:
    gateways: int = 2
    tritons: int = 2
    repository: Path = CPU_MODEL_REPOSITORY
    model: str = MODEL_NAME
    backend_venv: Path = TRITON_VENV
    backends_dir: Path = TRITON_BACKENDS_DIR
    drain_timeout_s: float = 2.0
    # Extra gateway environment (e.g. REQUEST_TIMEOUT_S); the topology's own variables win.
    gateway_env: dict[str, str] = field(default_factory=dict)


@dataclass
class GatewayProcess:
    index: int
    port: int
    log_file: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


NGINX_CONF = """\
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
{user}
events {{ worker_connections 1024; }}
http {{
    log_format upstream '$msec|$status|$upstream_addr|$upstream_status|$request_method $uri';
    access_log {root}/access.log upstream;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    client_max_body_size 16m;

    upstream gateways {{
{servers}
        # Reused connections to the gateways; nginx closes idle ones after 60 s, before the
        # gateway's KEEP_ALIVE_S (75 s), so it never sends on a connection the gateway just closed.
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://gateways;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
            # A gateway that refuses or drops a connection (killed, restarting) is skipped and the
            # request goes to the next one. POSTs too (non_idempotent): /predict has no side effect
            # but a log row, and /feedback with the same label is idempotent (200, stored=false).
            proxy_next_upstream error timeout non_idempotent;
            proxy_next_upstream_tries 3;
        }}
    }}
}}
"""


class Topology:
    """Start, poke and stop the whole miniature production topology."""

    def __init__(self, options: TopologyOptions) -> None:
        self.options = options
        self.root = Path(tempfile.mkdtemp(prefix="cd-topology-"))
        self.postgres = PostgresCluster(free_port())
        self.database_url = ""
        self.tritons: list[TritonLauncher] = []
        self.gateways: list[GatewayProcess] = []
        self.nginx_port = free_port()
        self.nginx: subprocess.Popen[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Topology:
        try:
            self.postgres.start()
            self.database_url = self.postgres.create_database("predictions")
            for j in range(self.options.tritons):
                self.tritons.append(TritonLauncher(self._triton_options(j)))
            for launcher in self.tritons:  # start all, then wait: the servers load in parallel
                launcher.start(wait=False)
            for launcher in self.tritons:
                launcher.wait_ready()
            self.gateways = [
                GatewayProcess(i, free_port(), self.root / f"gateway-{i}.log")
                for i in range(self.options.gateways)
            ]
            for gateway in self.gateways:
                self.start_gateway(gateway.index, wait=False)
            for gateway in self.gateways:
                self.wait_gateway_ready(gateway.index)
            self._start_nginx()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGQUIT)  # graceful: finish requests, then exit
            try:
                self.nginx.wait(10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
                self.nginx.wait()
        for gateway in self.gateways:
            if gateway.running and gateway.process is not None:
                gateway.process.send_signal(signal.SIGINT)  # no drain at teardown
        for gateway in self.gateways:
            if gateway.process is not None:
                try:
                    gateway.process.wait(20)
                except subprocess.TimeoutExpired:
                    gateway.process.kill()
                    gateway.process.wait()
        for launcher in self.tritons:
            launcher.stop()
        self.postgres.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Topology:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- Triton ----------------------------------------------------------------------------------
    def _triton_options(self, j: int) -> TritonOptions:
        return TritonOptions(
            repository=self.options.repository,
            model=self.options.model,
            http_port=free_port(),
            grpc_port=free_port(),
            metrics_port=free_port(),
            backend_venv=self.options.backend_venv,
            backends_dir=self.options.backends_dir,
            log_file=self.root / f"triton-{j}.log",
            pid_file=self.root / f"triton-{j}.pid",
            ready_timeout_s=120,
        )

    @property
    def triton_url(self) -> str:
        """The gateways' TRITON_URL: every Triton's gRPC address, comma-separated."""
        return ",".join(launcher.options.grpc_url for launcher in self.tritons)

    def stop_triton(self, j: int) -> None:
        """Graceful stop (SIGINT), as a rolling update or a scale-in does."""
        self.tritons[j].stop()

    def start_triton(self, j: int) -> None:
        """Start Triton ``j`` again on the same ports (the gateways' channel reconnects to it)."""
        launcher = self.tritons[j]
        launcher.start()

    def triton_requests(self, j: int) -> int:
        """Successful inference requests Triton ``j`` counted itself (``nv_inference_request_success``)."""
        with urllib.request.urlopen(self.tritons[j].options.metrics_url, timeout=5) as response:
            text = response.read().decode()
        total = 0.0
        for line in text.splitlines():
            match = re.match(r'nv_inference_request_success\{[^}]*model="([^"]+)"[^}]*\}\s+(\S+)', line)
            if match and match.group(1) == self.options.model:
                total += float(match.group(2))
        return int(total)

    # -- gateways --------------------------------------------------------------------------------
    def gateway_env(self, gateway: GatewayProcess) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k.upper() not in {"TRACKING_DB", "PORT", "HOST"}}
        env.update(self.options.gateway_env)
        env.update(
            {
                "HOST": "127.0.0.1",
                "PORT": str(gateway.port),
                "TRITON_URL": self.triton_url,
                "TRITON_PROTOCOL": "grpc",
                "MODEL_NAME": self.options.model,
                "TRACKING_DATABASE_URL": self.database_url,
                "DRAIN_TIMEOUT_S": str(self.options.drain_timeout_s),
                "STATS_SNAPSHOT_PATH": "",
                "MODEL_REFRESH_S": "0.5",
                "TRACKING_REFRESH_S": "1",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")])),
            }
        )
        return env

    def start_gateway(self, i: int, *, wait: bool = True) -> None:
        gateway = self.gateways[i]
        if gateway.running:
            raise RuntimeError(f"gateway {i} is already running")
        with gateway.log_file.open("ab") as log:
            gateway.process = subprocess.Popen(
                [sys.executable, "-m", "gateway"],
                env=self.gateway_env(gateway),
                cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            self.wait_gateway_ready(i)

    def wait_gateway_ready(self, i: int, timeout_s: float = 60.0) -> None:
        gateway = self.gateways[i]
        assert gateway.process is not None
        wait_http_ok(
            gateway.url + "/health/ready",
            timeout_s=timeout_s,
            pid=gateway.process.pid,
            log_file=gateway.log_file,
            what=f"gateway {i}",
        )

    def signal_gateway(self, i: int, sig: signal.Signals) -> None:
        process = self.gateways[i].process
        if process is None or process.poll() is not None:
            raise RuntimeError(f"gateway {i} is not running")
        process.send_signal(sig)

    def wait_gateway_exit(self, i: int, timeout_s: float = 60.0) -> int:
        process = self.gateways[i].process
        assert process is not None
        return process.wait(timeout_s)

    # -- nginx -----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    def _start_nginx(self) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise FileNotFoundError("nginx not found: install Debian's package (`apt-get install nginx`)")
        for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.root / "tmp" / name).mkdir(parents=True, exist_ok=True)
        servers = "\n".join(
            # max_fails=1: one refused connection takes a gateway out for fail_timeout.
            f"        server 127.0.0.1:{g.port} max_fails=1 fail_timeout=2s;"
            for g in self.gateways
        )
        # As root, nginx would run its worker as "nobody", which cannot use this private temp dir.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
        conf = self.root / "nginx.conf"
        conf.write_text(NGINX_CONF.format(root=self.root, servers=servers, port=self.nginx_port, user=user))
        self.nginx = subprocess.Popen(
            [binary, "-p", str(self.root), "-c", str(conf), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "nginx.stderr").open("ab"),
            start_new_session=True,
        )
        wait_http_ok(
            self.url + "/health/live",
            timeout_s=20,
            pid=self.nginx.pid,
            log_file=self.root / "error.log",
            what="nginx",
        )

    def nginx_log(self) -> list[ProxyLogEntry]:
        """nginx's record of every request: when, its status, and each gateway it tried, in order."""
        path = self.root / "access.log"
        if not path.exists():
            return []
        entries = []
        for line in path.read_text().splitlines():
            parts = line.split("|")
            if len(parts) == 5:
                tried = [a.strip() for a in re.split(r"[,:]\s", parts[2]) if a.strip()]
                entries.append(ProxyLogEntry(float(parts[0]), int(parts[1]), tried, parts[4]))
        return entries


@dataclass(frozen=True)
class ProxyLogEntry:
    time: float  # Unix seconds
    status: int
    upstreams: list[str]  # gateways tried, the one that answered last
    request: str


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving.topology",
        description="nginx → N gateways → M Triton servers, one shared PostgreSQL, all on loopback.",
    )
    parser.add_argument("--gateways", type=int, default=2, help="gateway processes behind nginx")
    parser.add_argument("--tritons", type=int, default=2, help="Triton servers behind every gateway")
    parser.add_argument(
        "--repository", type=Path, default=CPU_MODEL_REPOSITORY, help="model repository every Triton serves"
    )
    parser.add_argument("--model", default=MODEL_NAME, help="Triton model name")
    parser.add_argument("--drain-timeout", type=float, default=2.0, help="the gateways' DRAIN_TIMEOUT_S")
    parser.add_argument(
        "--duration", type=float, default=None, help="stop after this many seconds (default: until Ctrl-C)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.gateways <= 8 or not 1 <= args.tritons <= 8:
        print("error: --gateways and --tritons must be 1..8", file=sys.stderr)
        return 2
    options = TopologyOptions(
        gateways=args.gateways,
        tritons=args.tritons,
        repository=args.repository,
        model=args.model,
        drain_timeout_s=args.drain_timeout,
    )
    if not (options.repository / options.model / CONFIG_FILENAME).is_file():
        print(
            f"error: no model {options.model!r} in {options.repository}: export one first (`make up`)",
            file=sys.stderr,
        )
        return 2
    try:
        topology = Topology(options).start()
    except (FileNotFoundError, RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"nginx        {topology.url}  (POST /predict, /feedback; GET /stats)")
        for g in topology.gateways:
            print(
                f"gateway {g.index}    {g.url}  (pid {g.process.pid if g.process else '-'}, log {g.log_file})"
            )
        for j, t in enumerate(topology.tritons):
            print(f"triton {j}     gRPC {t.options.grpc_url}, metrics {t.options.metrics_url}")
        print(f"postgresql   127.0.0.1:{topology.postgres.port} (database 'predictions')")
        print("Ctrl-C stops everything." if args.duration is None else f"stopping in {args.duration:.0f} s")
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.5)
            for g in topology.gateways:
                if g.process is not None and not is_running(g.process.pid) and g.process.poll() is not None:
                    print(
                        f"gateway {g.index} exited ({g.process.returncode}); log {g.log_file}",
                        file=sys.stderr,
                    )
                    return 1
    except KeyboardInterrupt:
        pass
    finally:
        topology.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
