"""What capping request heads costs: the gateway's h11 protocol (gateway/server.py) vs uvicorn's httptools.

``python -m benchmarks.http_parser`` starts the gateway app twice in a subprocess of its own on
loopback — once with the server options the gateway runs with, once with the same options but
``http="httptools"`` (no head limit) — and drives ``GET /health/live`` from keep-alive raw-socket
clients for a fixed time, alternating the two servers ``--rounds`` times. No Triton is needed: the
route does not call it, so the figure is parser + ASGI + routing cost, the part the protocol changes.
Results go to a JSON file (default ``build/bench/http_parser.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from contract.paths import PROJECT_ROOT
from serving.processes import free_port

SERVER = """
import sys, uvicorn
from gateway import Settings, create_app
from gateway.__main__ import server_options
settings = Settings(port=int(sys.argv[1]), tracking_enabled=False, log_level="WARNING")
options = server_options(settings)
if sys.argv[2] == "httptools":
    options["http"] = "httptools"
uvicorn.run(create_app(settings), **options, log_config=None, access_log=False)
"""

REQUEST = b"GET /health/live HTTP/1.1\r\nHost: bench\r\n\r\n"


async def _client(port: int, stop_at: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    try:
        while time.monotonic() < stop_at:
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            done += 1
    finally:
        counts.append(done)
        writer.close()


async def _load(port: int, clients: int, seconds: float) -> float:
    counts: list[int] = []
    stop_at = time.monotonic() + seconds
    await asyncio.gather(*(_client(port, stop_at, counts) for _ in range(clients)))
    return sum(counts) / seconds


def _wait_up(port: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the benchmark server on port {port} did not start")


def measure(protocol: str, clients: int, seconds: float) -> float:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TRITON_URL": f"127.0.0.1:{free_port()}"}
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), protocol],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_up(port)
        asyncio.run(_load(port, clients, 1.0))  # warm-up
        return asyncio.run(_load(port, clients, seconds))
    finally:
        server.terminate()
        server.wait(timeout=15)


def _reliability_document(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    rows = [
        [name, f"{statistics.median(values):.0f}", ", ".join(f"{v:.0f}" for v in values)]
        for name, values in result["req_per_s"].items()
    ]
    return {
        "title": "HTTP parser cost (benchmarks/http_parser.py)",
        "generated_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{result['cpus']} CPUs, load average {result['load_average_1m_at_end']:.1f} at the end",
        "sections": [
            {
                "heading": "h11 with a 16 KiB head cap vs httptools",
                "text": (
                    f"{args.clients} keep-alive raw-socket clients on `GET /health/live` (no Triton call), "
                    f"{args.seconds:g} s per server per round, servers alternated. On this endpoint the "
                    f"parser is most of the work; h11 costs {result['h11_cost_fraction']:.0%} of its rate. "
                    "A /predict spends far longer in multipart parsing, decoding and Triton, so the share "
                    "there is smaller. Measured on a shared, heavily loaded machine: treat as indicative."
                ),
                "tables": [
                    {
                        "caption": "Requests per second",
                        "command": f"python -m benchmarks.http_parser --rounds {args.rounds} "
                        f"--seconds {args.seconds:g} --clients {args.clients}",
                        "columns": ["server", "median req/s", "rounds"],
                        "rows": rows,
                    }
                ],
            }
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_parser", description=__doc__)
    parser.add_argument("--clients", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per round and server")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument(
        "--out", type=Path, default=PROJECT_ROOT / "build" / "bench" / "http_parser.json", help="results JSON"
    )
    parser.add_argument(
        "--reliability-json",
        type=Path,
        help="also write the figures as a RELIABILITY.md results file (docs/reliability/http_parser.json)",
    )
    args = parser.parse_args(argv)
    rates: dict[str, list[float]] = {"h11-limited": [], "httptools": []}
    for _ in range(args.rounds):
        for protocol in ("h11", "httptools"):
            rate = measure(protocol, args.clients, args.seconds)
            rates["h11-limited" if protocol == "h11" else "httptools"].append(rate)
            print(f"{protocol:10s} {rate:8.0f} req/s", flush=True)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    cost = 1 - medians["h11-limited"] / medians["httptools"]
    load = os.getloadavg()[0]
    result = {
        "endpoint": "GET /health/live",
        "clients": args.clients,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "req_per_s": rates,
        "median_req_per_s": medians,
        "h11_cost_fraction": cost,
        "cpus": os.cpu_count(),
        "load_average_1m_at_end": load,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.reliability_json is not None:
        args.reliability_json.write_text(json.dumps(_reliability_document(result, args), indent=2) + "\n")
    print(
        f"median: h11 (limited) {medians['h11-limited']:.0f} req/s, httptools {medians['httptools']:.0f} "
        f"req/s: h11 costs {cost:.0%} of the parser-bound rate (load average {load:.1f}); {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
