"""``make bench``: the performance evidence, measured side by side → docs/benchmarks/BENCHMARKS.md + charts.

    python -m benchmarks.suite                       # full run (~20 min on 2 cores)
    python -m benchmarks.suite --quick --out /tmp/B.md --charts /tmp/charts   # smoke test, ~1.5 min

Everything runs on 127.0.0.1: a seeded ResNet18 checkpoint (random weights: speed does not depend on
them) is exported with the export package (FP32 + INT8), served by the real Triton through the
launcher ``make triton`` uses, fronted by the gateway (``make gateway``'s launcher), and compared with
the original design's server (FastAPI + PyTorch eager, one image per request) on the same photos.
Then the model ``make up`` serves (the bundled checkpoint, ``--served-checkpoint``) is measured the
same way against the bound its gateway's decoding allows (benchmarks/served.py; ``--no-served`` skips).
Each comparison is interleaved within every repetition; tables show medians of ``--runs`` runs.
The raw figures go to ``results.json`` next to the report (paths relative to the project root), so
``python -m benchmarks.report <folder>/results.json --out <folder>/BENCHMARKS.md`` renders it again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.photos import resolve_photos
from benchmarks.portable import portable_command, portable_path
from contract.model import MODEL_NAME
from contract.paths import ARTIFACTS_DIR, PROJECT_ROOT
from imaging.cli import ArgumentParser

TRAINED_CHECKPOINT = PROJECT_ROOT / ARTIFACTS_DIR / "checkpoints" / "last.pt"
SERVED_CHECKPOINT = PROJECT_ROOT / "models" / "bundled" / "model.pt"  # what `make up` serves
REPORT = PROJECT_ROOT / "docs" / "benchmarks" / "BENCHMARKS.md"
RESULTS_FILE = "results.json"  # written next to the report: the raw figures it is rendered from
COMPANIONS = ("cpu_sweep", "rss_probe")  # <name>.json next to the report, written by their own runs


def _levels(text: str) -> list[int]:
    levels = [int(v) for v in text.split(",") if v.strip()]
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"expected positive comma-separated integers, got {text!r}")
    return levels


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m benchmarks.suite",
        description=__doc__.split("\n\n")[0],
        epilog="example:\n  python -m benchmarks.suite --images path/to/photos",
    )
    p.add_argument(
        "--images",
        type=Path,
        default=None,
        help="photo folder (make: PERF_IMAGES); default: synthetic photos generated in build/perf/photos",
    )
    p.add_argument("--out", type=Path, default=REPORT, help="report to write")
    p.add_argument(
        "--charts", type=Path, default=PROJECT_ROOT / "docs" / "benchmarks", help="folder for PNG charts"
    )
    p.add_argument("--work", type=Path, default=PROJECT_ROOT / "build" / "bench", help="scratch folder")
    p.add_argument("--runs", type=int, default=3, help="repetitions of every comparison (>= 3; medians)")
    p.add_argument("--duration", type=float, default=5.0, help="max seconds per load level and run")
    p.add_argument("--max-requests", type=int, default=1500, help="max requests per load level and run")
    p.add_argument("--concurrency", type=_levels, default=[1, 8, 16], help="load levels, e.g. 1,8,16")
    p.add_argument("--sample", type=int, default=64, help="distinct photos cycled through by the load tests")
    p.add_argument(
        "--rss-requests",
        type=int,
        default=4000,
        help="gateway requests for the memory test (the issue asks 20000: ~6 min here; "
        "the default fits the suite's time budget)",
    )
    p.add_argument("--cold-starts", type=int, default=3, help="Triton and gateway start-ups to time")
    p.add_argument(
        "--score-limit", type=int, default=0, help="photos for the bulk-scoring runs (0 = the whole folder)"
    )
    p.add_argument("--model", default="resnet18", help="training.models architecture for the speed tests")
    p.add_argument("--image-size", type=int, default=224, help="model input side")
    p.add_argument(
        "--accuracy-checkpoint",
        type=Path,
        default=None,
        help="trained checkpoint for INT8 vs FP32 accuracy on the photos (default: "
        f"{TRAINED_CHECKPOINT.relative_to(PROJECT_ROOT)} when present; --quick: none unless given)",
    )
    p.add_argument(
        "--accuracy-manifest",
        type=Path,
        help="data manifest the checkpoint was trained from: accuracy on its test split, INT8 calibrated "
        "on its train split (default: photos spread over --images, folder name = label)",
    )
    p.add_argument("--accuracy-images", type=int, default=600, help="labelled photos for the accuracy check")
    p.add_argument("--engine-seconds", type=float, default=2.0, help="seconds per ORT/eager timing run")
    p.add_argument("--threads", type=int, default=2, help="compute threads (ORT intra-op, torch)")
    p.add_argument(
        "--peak-gflops",
        type=float,
        default=None,
        help="a theoretical FP32 peak to compare with as well (default: only the measured SGEMM rate)",
    )
    p.add_argument(
        "--served-checkpoint",
        type=Path,
        default=SERVED_CHECKPOINT,
        help="the served model's checkpoint for the served-model section (default: the bundled model, "
        f"{SERVED_CHECKPOINT.relative_to(PROJECT_ROOT)})",
    )
    p.add_argument(
        "--served-concurrency",
        type=_levels,
        default=[1, 8, 16, 32],
        help="load levels of the served-model section",
    )
    p.add_argument(
        "--no-served",
        dest="served",
        action="store_false",
        help="skip the served-model section (default: measured)",
    )
    p.add_argument("--quick", action="store_true", help="tiny model and settings: a smoke test of the suite")
    return p


def quick_settings(args: argparse.Namespace) -> None:
    args.model, args.image_size, args.runs, args.duration = "simple_cnn", 64, 3, 0.25
    args.max_requests, args.concurrency, args.sample, args.rss_requests = 40, [1, 4], 8, 40
    args.cold_starts, args.score_limit, args.accuracy_images, args.engine_seconds = 1, 40, 40, 0.05
    args.served_concurrency = [1, 4]


def machine_facts() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu = (
        f"{info.get('model name', 'unknown CPU')} (family {info.get('cpu family', '?')}, model "
        f"{info.get('model', '?')})"
    )
    sha = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    return {
        "cpu": f"{cpu}, {os.cpu_count()} vCPUs",
        "python": platform.python_version(),
        "git": sha.stdout.strip() or "unknown",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# Servers this run started, stopped by the finally below or, on SIGINT/SIGTERM, by _interrupted:
# an interrupted asyncio load level can wait forever on in-flight gRPC calls, so a signal stops the
# servers directly and exits instead of unwinding through the event loop.
_cleanups: list[Callable[[], object]] = []


def _interrupted(signum: int, _frame: object) -> None:
    print(f"\ninterrupted (signal {signum}): stopping the servers this run started", file=sys.stderr)
    for cleanup in reversed(_cleanups):
        try:
            cleanup()
        except Exception as exc:  # keep stopping the others
            print(f"  cleanup failed: {exc}", file=sys.stderr)
    os._exit(128 + signum)


def run_suite(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    # Heavy imports after argument parsing, so --help and bad flags answer at once.
    from benchmarks import measure, stack
    from imaging import load_for_model
    from serving.gateway_process import GatewayOptions
    from serving.processes import free_port
    from serving.triton import TritonOptions
    from training.checkpoint import load_checkpoint

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"machine": machine_facts(), "load_start": load_average(), "settings": {}}
    res["settings"] = {
        k: (portable_path(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if k not in {"out", "charts"}
    }
    photos = measure.photo_files(args.images, 10**9)
    sample_photos = photos[:: max(1, len(photos) // 64)][:64]

    say(f"[1/10] checkpoint + export ({args.model}, {args.image_size}px, random weights)")
    spec = stack.ModelSpec(args.model, args.image_size, {"width": 8} if args.model == "simple_cnn" else {})
    checkpoint = stack.random_checkpoint(work / f"{args.model}-random.pt", spec)
    calibration = np.stack([load_for_model(p.read_bytes(), args.image_size) for p in sample_photos])
    t0 = time.perf_counter()
    repos = stack.build_repositories(checkpoint, work, calibration)
    res["export_s"] = time.perf_counter() - t0
    model, _ = load_checkpoint(checkpoint)
    res["flops_per_image"] = measure.flops_per_image(model, args.image_size)

    triton_opts = TritonOptions(
        repository=repos.cpu,
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
        log_file=work / "run" / "triton.log",
        pid_file=work / "run" / "triton.pid",
        ready_timeout_s=180,
    )
    gw = GatewayOptions(
        port=free_port(),
        triton_url=triton_opts.grpc_url,
        log_file=work / "run" / "gateway.log",
        pid_file=work / "run" / "gateway.pid",
        timeout_s=120,
    )
    gw_int8 = GatewayOptions(
        port=free_port(),
        triton_url=triton_opts.grpc_url,
        model_name=stack.INT8_MODEL,
        log_file=work / "run" / "gateway-int8.log",
        pid_file=work / "run" / "gateway-int8.pid",
        timeout_s=120,
    )
    baseline = stack.BaselineServer(checkpoint, free_port(), work / "run" / "baseline.log")
    (work / "run").mkdir(exist_ok=True)
    launcher = None
    _cleanups.extend(
        [
            lambda: stack.stop_by_pid_file(triton_opts.pid_file),
            lambda: stack.stop_gateway(gw),
            lambda: stack.stop_gateway(gw_int8),
            baseline.stop,
        ]
    )
    try:
        say(f"[2/10] Triton cold start ×{args.cold_starts}")
        res["triton_start_s"] = []
        for i in range(args.cold_starts):
            launcher, seconds = stack.timed_triton_start(triton_opts)
            res["triton_start_s"].append(seconds)
            if i < args.cold_starts - 1:
                launcher.stop()
        for name in (stack.INT8_MODEL, stack.NOBATCH_MODEL):
            stack.load_model(triton_opts, name)
        say(f"[3/10] gateway cold start ×{args.cold_starts}")
        res["gateway_start_s"] = []
        for i in range(args.cold_starts):
            res["gateway_start_s"].append(stack.timed_gateway_start(gw))
            if i < args.cold_starts - 1:
                stack.stop_gateway(gw)
        stack.timed_gateway_start(gw_int8)
        res["baseline_start_s"] = baseline.start()

        say(f"[4/10] load matrix: concurrency {args.concurrency}, {args.runs} runs × ≤{args.duration:g} s")
        res["matrix"], res["cpu_per_request"] = asyncio.run(
            _load_matrix(args, triton_opts, gw, gw_int8, baseline.url, say)
        )
        say("[5/10] dynamic batching on vs off")
        res["batching"] = asyncio.run(_batching(args, triton_opts, say))
        say("[6/10] bulk scoring vs Triton direct")
        res["scoring"] = _scoring(args, work, triton_opts, photos, say)
        say(f"[7/10] gateway RSS over {args.rss_requests} requests")
        res["rss"] = asyncio.run(_rss(args, gw, say))
    finally:
        baseline.stop()
        stack.stop_gateway(gw_int8)
        stack.stop_gateway(gw)
        if launcher is not None:
            launcher.stop()

    if args.served:
        from benchmarks import served

        say(f"[8/10] served model {portable_path(args.served_checkpoint)}: gateway, baseline, decode bound")
        res["served"] = served.run(args, _cleanups, say)
    else:
        res["served"] = None
    say("[9/10] ONNX Runtime vs PyTorch eager, in process")
    engine = measure.engines(
        repos.fp32_onnx, model, calibration, [1, 16],
        runs=args.runs, seconds=args.engine_seconds, threads=args.threads,
    )  # fmt: skip
    res["engines"] = {f"{name}|{bs}": v for (name, bs), v in engine.items()}
    res["gemm"] = {
        "n": 2048,
        "threads": args.threads,
        "gflops": measure.gemm_gflops(threads=args.threads, runs=args.runs, seconds=args.engine_seconds),
    }
    say("[10/10] INT8 vs FP32 (python -m benchmarks.int8_bench) and accuracy")
    res["int8"] = _int8(args, repos, say)
    res["load_end"] = load_average()
    return res


async def _load_matrix(
    args: argparse.Namespace,
    triton: Any,
    gw: Any,
    gw_int8: Any,
    baseline_url: str,
    say: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, Any]]:
    from benchmarks import measure, stack
    from serving.processes import read_pid

    top = max(args.concurrency)
    senders = await measure.senders_for(
        args.images,
        args.sample,
        {
            "baseline": ("http", {"url": baseline_url}),
            "gateway_fp32": ("http", {"url": gw.url}),
            "gateway_int8": ("http", {"url": gw_int8.url}),
            "triton_fp32": ("triton", {"grpc_url": triton.grpc_url, "model": MODEL_NAME, "batch": 1}),
        },
        top,
    )
    metrics = {
        "gateway_fp32": (triton.metrics_url, MODEL_NAME),
        "gateway_int8": (triton.metrics_url, stack.INT8_MODEL),
        "triton_fp32": (triton.metrics_url, MODEL_NAME),
    }
    # Who pays for each request: the FP32 gateway path vs Triton direct, process by process.
    gateway_pid, triton_pid = read_pid(gw.pid_file), read_pid(triton.pid_file)
    probes: dict[str, measure.LevelProbe] = {}
    cpu: dict[str, measure.CpuProbe] = {}
    if gateway_pid is not None and triton_pid is not None:
        cpu = {
            "gateway_fp32": measure.CpuProbe(
                {"gateway": [gateway_pid], "triton": [triton_pid], "client": []}
            ),
            "triton_fp32": measure.CpuProbe({"triton": [triton_pid], "client": []}),
        }
        probes = dict(cpu)
    matrix = await measure.run_matrix(
        senders, metrics, args.concurrency, runs=args.runs, duration_s=args.duration,
        max_requests=args.max_requests, probes=probes, say=say,
    )  # fmt: skip
    results = {
        t: {str(c): [r.as_dict() for r in rs] for c, rs in by_c.items()} for t, by_c in matrix.results.items()
    }
    cpu_ms = {t: {str(c): runs for c, runs in probe.per_level.items()} for t, probe in cpu.items()}
    return results, cpu_ms


async def _batching(args: argparse.Namespace, triton: Any, say: Callable[[str], None]) -> dict[str, Any]:
    from benchmarks import measure, stack

    level = max(args.concurrency)
    senders = await measure.senders_for(
        args.images,
        args.sample,
        {
            "dynamic_batching": ("triton", {"grpc_url": triton.grpc_url, "model": MODEL_NAME, "batch": 1}),
            "no_batching": (
                "triton",
                {"grpc_url": triton.grpc_url, "model": stack.NOBATCH_MODEL, "batch": 1},
            ),
        },
        level,
    )
    metrics = {
        "dynamic_batching": (triton.metrics_url, MODEL_NAME),
        "no_batching": (triton.metrics_url, stack.NOBATCH_MODEL),
    }
    matrix = await measure.run_matrix(
        senders, metrics, [level], runs=args.runs, duration_s=args.duration,
        max_requests=args.max_requests, say=say,
    )  # fmt: skip
    return {t: [r.as_dict() for r in by_c[level]] for t, by_c in matrix.results.items()}


SCORER_BATCH, SCORER_IN_FLIGHT = 32, 4


def _scoring(
    args: argparse.Namespace, work: Path, triton: Any, photos: list[Path], say: Callable[[str], None]
) -> dict[str, Any]:
    """The scorer over the photos vs Triton fed the same-shaped batches (pre-decoded) at the same depth."""
    from benchmarks import measure

    chosen = (
        photos
        if not args.score_limit
        else photos[:: max(1, len(photos) // args.score_limit)][: args.score_limit]
    )
    source = (
        args.images
        if len(chosen) == len(photos)
        else measure.write_manifest(chosen, work / "score-input.csv")
    )
    extra = ["--batch-size", str(SCORER_BATCH), "--in-flight", str(SCORER_IN_FLIGHT)]
    runs: list[dict[str, Any]] = []
    direct: list[dict[str, Any]] = []

    async def direct_level() -> dict[str, Any]:
        senders = await measure.senders_for(
            args.images,
            args.sample,
            {
                "direct": (
                    "triton",
                    {"grpc_url": triton.grpc_url, "model": MODEL_NAME, "batch": SCORER_BATCH},
                )
            },
            SCORER_IN_FLIGHT,
        )
        result = await measure.run_level(
            senders["direct"], SCORER_IN_FLIGHT, duration_s=max(2 * args.duration, 3.0),
            max_requests=args.max_requests, warmup_requests=2, metrics_url=triton.metrics_url,
            images_per_request=SCORER_BATCH,
        )  # fmt: skip
        return result.as_dict()

    for rep in range(args.runs):
        run = measure.run_scorer(source, work / "scores.csv", triton.grpc_url, extra)
        runs.append(vars(run))
        direct.append(asyncio.run(direct_level()))
        say(
            f"  run {rep + 1}/{args.runs}: scorer {run.img_per_s:.1f} img/s ({run.scored} photos, "
            f"{run.wall_s:.1f} s wall) vs Triton direct {direct[-1]['infer_per_s']:.1f} img/s"
        )
    return {"runs": runs, "direct": direct, "photos": len(chosen), "source": portable_path(source)}


async def _rss(args: argparse.Namespace, gw: Any, say: Callable[[str], None]) -> dict[str, Any]:
    from benchmarks import measure, stack
    from serving.processes import read_pid

    pid = read_pid(gw.pid_file)
    if pid is None:
        raise RuntimeError("gateway not running for the RSS test")
    senders = await measure.senders_for(args.images, args.sample, {"gw": ("http", {"url": gw.url})}, 8)
    warmup = min(200, max(10, args.rss_requests // 10))
    await measure.run_level(senders["gw"], 8, duration_s=120, max_requests=warmup)
    points = [(0, stack.rss_bytes(pid))]
    step = max(1, args.rss_requests // 10)
    done, deadline = 0, time.monotonic() + max(60.0, args.rss_requests / 5)
    rate: list[float] = []
    while done < args.rss_requests and time.monotonic() < deadline:
        result = await measure.run_level(
            senders["gw"], 8, duration_s=max(1.0, deadline - time.monotonic()),
            max_requests=min(step, args.rss_requests - done),
        )  # fmt: skip
        done += result.requests
        rate.append(result.infer_per_s)
        points.append((done, stack.rss_bytes(pid)))
        say(f"  {done} requests: RSS {points[-1][1] / 2**20:.1f} MiB")
    return {"warmup_requests": warmup, "points": points, "img_per_s": _med(rate)}


def _int8(args: argparse.Namespace, repos: Any, say: Callable[[str], None]) -> dict[str, Any]:
    from benchmarks import measure
    from imaging import load_for_model
    from training.checkpoint import load_checkpoint

    argv = [
        "--model", args.model, "--image-size", str(args.image_size), "--runs", str(args.runs),
        "--seconds", str(args.engine_seconds), "--threads", str(args.threads),
    ]  # fmt: skip
    if args.quick:
        argv += ["--calibration-images", "8", "--batch-sizes", "1,4"]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.int8_bench", *argv],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmarks.int8_bench failed: {proc.stderr[-2000:]}")
    out: dict[str, Any] = {
        "command": "python -m benchmarks.int8_bench " + shlex.join(argv),
        "table": proc.stdout.strip(),
    }
    ckpt = args.accuracy_checkpoint
    if ckpt is None or not ckpt.is_file():
        out["accuracy"] = None
        return out
    say(f"  accuracy of {portable_path(ckpt)} (FP32 vs INT8) on {args.accuracy_images} labelled photos")
    from benchmarks import stack

    _, meta = load_checkpoint(ckpt)
    if args.accuracy_manifest is not None:
        files, labels = measure.manifest_split(args.accuracy_manifest, "test", meta.class_names)
        calib_files = measure.manifest_split(args.accuracy_manifest, "train", meta.class_names)[0][::20][:64]
        evaluated_on = f"the test split of {portable_path(args.accuracy_manifest)}"
    else:
        files, labels = measure.labelled_photos(args.images, args.accuracy_images, meta.class_names)
        calib_files = [p for p in measure.photo_files(args.images, 10**9) if p not in set(files)][:64]
        evaluated_on = (
            f"photos spread over {portable_path(args.images)} (may include the checkpoint's training photos)"
        )
    pixels = np.stack([load_for_model(p.read_bytes(), meta.image_size) for p in files])
    work = args.work.resolve() / "accuracy"
    calibration = np.stack([load_for_model(p.read_bytes(), meta.image_size) for p in calib_files])
    repos_trained = stack.build_repositories(ckpt, work, calibration)
    out["accuracy"] = {
        "checkpoint": portable_path(ckpt),
        "architecture": meta.model_name,
        "images": len(files),
        "evaluated_on": evaluated_on,
        "val_accuracy_at_training": meta.val_metrics.get("val_accuracy"),
        "fp32": measure.accuracy(repos_trained.fp32_onnx, pixels, labels, args.threads),
        "int8": measure.accuracy(repos_trained.int8_onnx, pixels, labels, args.threads),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:
        quick_settings(args)
    elif args.accuracy_checkpoint is None and TRAINED_CHECKPOINT.is_file():
        args.accuracy_checkpoint = TRAINED_CHECKPOINT
    if args.runs < 3:
        parser.error("--runs must be >= 3 (the report quotes medians)")
    try:
        args.images = resolve_photos(args.images, say=lambda text: print(text, file=sys.stderr))
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.out.parent.is_dir():
        print(f"error: report folder does not exist: {args.out.parent}", file=sys.stderr)
        return 2
    if args.served and not args.served_checkpoint.is_file():
        print(
            f"error: served checkpoint not found: {args.served_checkpoint} (--served-checkpoint PATH, or "
            "--no-served)",
            file=sys.stderr,
        )
        return 2
    command = "python -m benchmarks.suite " + portable_command(argv if argv is not None else sys.argv[1:])
    started = time.perf_counter()

    def say(line: str) -> None:
        print(f"{time.perf_counter() - started:6.1f}s {line}", file=sys.stderr, flush=True)

    signal.signal(signal.SIGINT, _interrupted)
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        results = run_suite(args, say)
    except (FileNotFoundError, RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    results["command"] = command.strip()
    results["wall_s"] = time.perf_counter() - started
    results["peak_gflops"] = args.peak_gflops
    # The companion runs recorded beside the report (make cpu-sweep, make rss-probe) are copied in,
    # so the report and its results.json carry every figure the analysis cites.
    for key in COMPANIONS:
        companion = args.out.parent / f"{key}.json"
        results[key] = json.loads(companion.read_text()) if companion.is_file() else None
    # The report is rendered from the JSON text it is committed with (next to it), so
    # `python -m benchmarks.report <that results.json>` writes the same bytes again.
    text = json.dumps(results, indent=2, default=str) + "\n"
    (args.work / "results.json").write_text(text)
    results_file = args.out.parent / RESULTS_FILE
    results_file.write_text(text)
    from benchmarks.report import write_report

    write_report(json.loads(text), args.out, args.charts)
    print(
        f"report → {args.out}, results → {results_file}, charts → {args.charts} ({results['wall_s']:.0f} s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
