"""Where the gateway's resident memory goes under sustained load: ``make rss-probe``.

    python -m benchmarks.rss_probe --images DIR --requests 25000 --record

One real Triton serves the bundled model; the gateway (``python -m gateway``, the launcher's own
environment) is started once per mode and driven with the same photos at the same concurrency,
its RSS read from /proc every ``--step`` requests after a warm-up:

- ``default``: as users run it (glibc malloc, one arena per thread that allocates),
- ``arena2``: the same with ``MALLOC_ARENA_MAX=2`` (the glibc control for per-thread arenas),
- ``mmap128k``: the same with ``MALLOC_MMAP_THRESHOLD_=131072``: glibc otherwise raises its mmap
  threshold each time a large block is freed, so later decode-size buffers come from the heap and
  can fragment it; a fixed threshold keeps them in mmap (returned to the OS on free),
- ``traced``: the same as default under tracemalloc (benchmarks/traced_gateway.py), a snapshot at
  every step: Python-level growth by source line. Traced memory flat while RSS grows means the
  growth is below Python (allocator arenas, fragmentation, C extensions), not a Python leak.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import measure, stack
from benchmarks.perf import photo_files
from benchmarks.photos import resolve_photos
from benchmarks.portable import portable_command, portable_path
from benchmarks.report import rss_table
from contract.paths import PROJECT_ROOT
from imaging import load_for_model
from imaging.cli import ArgumentParser
from serving.processes import free_port, wait_http_ok
from serving.triton import TritonLauncher
from training.checkpoint import load_checkpoint

DEFAULT_CHECKPOINT = PROJECT_ROOT / "models" / "bundled" / "model.pt"
DEFAULT_OUT = PROJECT_ROOT / "build" / "rss-probe"
RECORD_DIR = PROJECT_ROOT / "docs" / "benchmarks"
MODES = ("default", "arena2", "mmap128k", "traced")
TOP_LINES = 12


def _gateway_env(mode: str, work: Path, port: int, triton_url: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_"):
        env.pop(name, None)
    env.update(
        {
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "TRITON_URL": triton_url,
            "TRACKING_DB": str(work / f"predictions-{mode}.db"),
            "STATS_SNAPSHOT_PATH": str(work / f"stats-{mode}.json"),
            "LOG_LEVEL": "WARNING",
        }
    )
    if mode == "arena2":
        env["MALLOC_ARENA_MAX"] = "2"
    if mode == "mmap128k":
        env["MALLOC_MMAP_THRESHOLD_"] = str(128 * 1024)
    if mode == "traced":
        env["TRACEMALLOC_SNAPSHOT_DIR"] = str(work / "snapshots")
    return env


def _snapshot(process: subprocess.Popen[bytes], folder: Path, timeout_s: float = 120.0) -> int:
    """Ask the traced gateway for a snapshot; returns Python's traced bytes at that moment."""
    n = len(list(folder.glob("snapshot-*.pickle")))
    process.send_signal(signal.SIGUSR1)
    done = folder / f"{n}.done"
    deadline = time.monotonic() + timeout_s
    while not done.exists():
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("the traced gateway wrote no snapshot")
        time.sleep(0.1)
    return int(done.read_text())


async def run_mode(args: argparse.Namespace, mode: str, work: Path, triton_url: str) -> dict[str, Any]:
    port = free_port()
    snapshots = work / "snapshots"
    if mode == "traced":
        snapshots.mkdir(parents=True, exist_ok=True)
        for old in snapshots.iterdir():
            old.unlink()
    module = "benchmarks.traced_gateway" if mode == "traced" else "gateway"
    log = (work / f"gateway-{mode}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", module], env=_gateway_env(mode, work, port, triton_url), cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(
            url + "/health/ready", timeout_s=120, pid=process.pid, log_file=Path(log.name), what="gateway"
        )
        senders = await measure.senders_for(
            args.images, args.sample, {"gw": ("http", {"url": url})}, args.concurrency
        )
        send = senders["gw"]
        await measure.run_level(send, args.concurrency, duration_s=600, max_requests=args.warmup)
        points: list[dict[str, Any]] = []

        def point(done: int, rate: float | None) -> None:
            traced = _snapshot(process, snapshots) if mode == "traced" else None
            points.append(
                {"requests": done, "rss": stack.rss_bytes(process.pid), "traced": traced, "img_s": rate}
            )
            extra = f", Python traced {traced / 2**20:.1f} MiB" if traced is not None else ""
            print(
                f"  [{mode}] {done} requests: RSS {points[-1]['rss'] / 2**20:.1f} MiB{extra}", file=sys.stderr
            )

        point(0, None)
        done = 0
        while done < args.requests:
            result = await measure.run_level(
                send, args.concurrency, duration_s=3600, max_requests=min(args.step, args.requests - done)
            )
            done += result.requests
            point(done, result.infer_per_s)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    first, last = points[0]["rss"], points[-1]["rss"]
    out: dict[str, Any] = {
        "mode": f"{mode} {args.tag}" if args.tag else mode,
        "points": points,
        "rss_start_mib": first / 2**20,
        "rss_end_mib": last / 2**20,
        "growth_pct": 100.0 * (last - first) / first,
    }
    if mode == "traced":
        out.update(_traced_growth(snapshots, points))
    return out


def _traced_growth(folder: Path, points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    files = sorted(folder.glob("snapshot-*.pickle"), key=lambda p: int(p.stem.split("-")[1]))
    first, last = tracemalloc.Snapshot.load(str(files[0])), tracemalloc.Snapshot.load(str(files[-1]))
    noise = (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>"))
    first, last = first.filter_traces(noise), last.filter_traces(noise)
    stats = last.compare_to(first, "lineno")
    top = [
        {
            "where": f"{portable_path(s.traceback[0].filename)}:{s.traceback[0].lineno}",
            "size_diff_kib": s.size_diff / 1024,
            "count_diff": s.count_diff,
        }
        for s in sorted(stats, key=lambda s: -s.size_diff)[:TOP_LINES]
    ]
    traced = [p["traced"] for p in points]
    return {
        "traced_start_mib": traced[0] / 2**20,
        "traced_end_mib": traced[-1] / 2**20,
        "traced_growth_mib": (traced[-1] - traced[0]) / 2**20,
        "top_growth": top,
    }


def chart(results: Sequence[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in results:
        xs = [p["requests"] for p in r["points"]]
        ax.plot(xs, [p["rss"] / 2**20 for p in r["points"]], marker="o", label=f"{r['mode']} RSS")
        if r["mode"].startswith("traced"):
            ax.plot(xs, [p["traced"] / 2**20 for p in r["points"]], ls="--", label="traced: Python heap")
    ax.set_xlabel("requests after warm-up")
    ax.set_ylabel("MiB")
    ax.set_title("Gateway memory under sustained load")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(document: dict[str, Any]) -> str:
    lines = [
        "# Gateway memory under sustained load",
        "",
        f"Measured {document['date_utc']} ({document['minutes']} min), "
        f"concurrency {document['concurrency']}, "
        f"{document['requests']} requests after {document['warmup']} warm-up requests, per mode; "
        f"the bundled model ({document['model']}) served by the real Triton.",
        "",
        f"Command: `{document['command']}`",
        "",
        "![rss](rss_probe.png)",
        "",
    ]
    lines += rss_table(document)
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m benchmarks.rss_probe",
        description="Gateway RSS under sustained load: glibc default vs MALLOC_ARENA_MAX=2 vs tracemalloc.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--images", type=Path, default=None, help="folder of photos (default: synthetic set)")
    p.add_argument("--sample", type=int, default=64, help="distinct photos sent (they repeat)")
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="model Triton serves")
    p.add_argument(
        "--modes", type=lambda s: s.split(","), default=list(MODES), help=f"comma-separated: {MODES}"
    )
    p.add_argument("--requests", type=int, default=25_000, help="requests per mode after the warm-up")
    p.add_argument("--step", type=int, default=5_000, help="requests between two RSS readings")
    p.add_argument("--warmup", type=int, default=500, help="requests before the first reading")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="work folder (repository, logs, snapshots)")
    p.add_argument(
        "--tag", default="", help="appended to each mode's name in the record (e.g. a code change measured)"
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the other modes of the existing rss_probe.json (measure only --modes, replace those)",
    )
    p.add_argument(
        "--record", action="store_true", help="write RSS_PROBE.md/.json/.png under docs/benchmarks"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    unknown = set(args.modes) - set(MODES)
    if unknown:
        print(f"error: unknown mode(s) {sorted(unknown)}; choose from {MODES}", file=sys.stderr)
        return 2
    args.images = resolve_photos(args.images, say=lambda s: print(s, file=sys.stderr))
    work = args.out.resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    _, meta = load_checkpoint(args.checkpoint)
    size = int(meta.image_size)
    calibration = np.stack([load_for_model(p.read_bytes(), size) for p in photo_files(args.images, 64)])
    repos = stack.build_repositories(args.checkpoint, work, calibration)
    triton = stack.local_triton(repos.cpu, work)
    launcher = TritonLauncher(triton)
    launcher.start()
    try:
        results = [asyncio.run(run_mode(args, mode, work, triton.grpc_url)) for mode in args.modes]
    finally:
        launcher.stop()
    document = {
        "command": portable_command(["python", "-m", "benchmarks.rss_probe", *(argv or sys.argv[1:])]),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "minutes": round((time.time() - started) / 60, 1),
        "model": f"{meta.model_name} {size}px",
        "concurrency": args.concurrency,
        "requests": args.requests,
        "warmup": args.warmup,
        "results": results,
    }
    dest = RECORD_DIR if args.record else work
    previous = dest / "rss_probe.json"
    if args.merge and previous.is_file():
        measured = {r["mode"] for r in results}
        kept = [r for r in json.loads(previous.read_text())["results"] if r["mode"] not in measured]
        results = sorted([*kept, *results], key=lambda r: (MODES.index(r["mode"].split()[0]), r["mode"]))
        document["results"] = results
        document["command"] += " (merged into the earlier run's other modes)"
    (dest / "rss_probe.json").write_text(json.dumps(document, indent=2) + "\n")
    chart(results, dest / "rss_probe.png")
    (dest / "RSS_PROBE.md").write_text(markdown(document))
    for r in results:
        start, end = r["rss_start_mib"], r["rss_end_mib"]
        print(f"{r['mode']}: RSS {start:.1f} → {end:.1f} MiB ({r['growth_pct']:+.1f} %)")
    print(f"wrote {dest / 'RSS_PROBE.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
