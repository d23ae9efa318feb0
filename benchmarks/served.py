"""The model ``make up`` serves, measured end to end: the suite's "Served model" step.

The bundled real-photo checkpoint (``models/bundled/model.pt``, or ``--served-checkpoint``) is
exported by the export package's one repository writer (``stack.build_repositories``), served by
the real Triton and a gateway process, and compared, on the same photos and interleaved, with the
baseline design serving the same checkpoint and with Triton direct. Beside them runs the bound this
design allows on the same cores: the gateway's own decoder (``gateway.decoding.Decoder`` with the
gateway's thread settings) decoding the same photos in this one process, nothing else. Where the
gateway's time goes comes from its ``stage_duration_seconds`` histograms, scraped before and after
each of its levels, and from a py-spy profile of the gateway at the profiled level.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks import measure, stack
from benchmarks.loadgen import LevelResult, SendFn, run_level
from benchmarks.portable import portable_arg, portable_path
from contract.model import MODEL_NAME
from contract.paths import PROJECT_ROOT
from export.contract import CONFIG_FILENAME
from export.triton_config import read_config
from gateway.decoding import Decoder, decoder_for
from gateway.settings import Settings
from imaging import ImageError, load_for_model
from serving.gateway_process import GatewayOptions
from serving.processes import free_port, read_pid
from serving.triton import TritonOptions
from training.checkpoint import load_checkpoint

DEFAULT_CHECKPOINT = PROJECT_ROOT / "models" / "bundled" / "model.pt"
GATEWAY, BASELINE, TRITON, DECODE = "gateway", "baseline", "triton_direct", "decode_bound"
TARGETS = (GATEWAY, BASELINE, TRITON, DECODE)
PROFILE_LEVEL = 16  # profiled when measured; else the top level
PROFILE_TOP = 15  # functions kept from the profile
STAGES = ("decode", "infer", "total")


def run(args: Any, cleanups: list[Callable[[], object]], say: Callable[[str], None]) -> dict[str, Any]:
    """Export, start, measure and stop; the returned dict is the results' ``served`` entry."""
    checkpoint = Path(args.served_checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(
            f"served checkpoint not found: {checkpoint} (--served-checkpoint, --no-served)"
        )
    work = args.work.resolve() / "served"
    run_dir = work / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    baseline = stack.BaselineServer(checkpoint, free_port(), run_dir / "baseline.log")
    cleanups.append(baseline.stop)
    launcher = None
    # The baseline imports PyTorch and loads the checkpoint while the export runs and Triton starts:
    # on 2 cores that saves the step ~6 s (its start time then includes sharing the CPU with them).
    with ThreadPoolExecutor(max_workers=1) as pool:
        baseline_started = pool.submit(baseline.start)
        try:
            _, meta = load_checkpoint(checkpoint)
            size = int(meta.image_size)
            photos = measure.photo_files(args.images, 10**9)
            calibration = np.stack(
                [load_for_model(p.read_bytes(), size) for p in photos[:: max(1, len(photos) // 64)][:64]]
            )
            t0 = time.perf_counter()
            repos = stack.build_repositories(checkpoint, work, calibration)
            export_s = time.perf_counter() - t0
            config = read_config(repos.cpu / MODEL_NAME / CONFIG_FILENAME)
            precision = config.parameters["precision"].string_value or "fp32"
            triton = TritonOptions(
                repository=repos.cpu,
                http_port=free_port(),
                grpc_port=free_port(),
                metrics_port=free_port(),
                log_file=run_dir / "triton.log",
                pid_file=run_dir / "triton.pid",
                ready_timeout_s=180,
            )
            gw = GatewayOptions(
                port=free_port(),
                triton_url=triton.grpc_url,
                log_file=run_dir / "gateway.log",
                pid_file=run_dir / "gateway.pid",
                timeout_s=120,
            )
            cleanups.extend([lambda: stack.stop_by_pid_file(triton.pid_file), lambda: stack.stop_gateway(gw)])
            launcher, triton_start_s = stack.timed_triton_start(triton)
            gateway_start_s = stack.timed_gateway_start(gw)
            baseline_start_s = baseline_started.result()
            say(
                f"  {meta.model_name} at {size}px ({precision}): Triton {triton_start_s:.1f} s, "
                f"gateway {gateway_start_s:.1f} s, baseline {baseline_start_s:.1f} s to start"
            )
            measured = asyncio.run(_measure(args, triton, gw, baseline.url, size, say))
        finally:
            baseline_started.cancel()
            pool.shutdown(wait=True)  # a baseline still starting is stopped below, not left behind
            baseline.stop()
            if launcher is not None:
                stack.stop_gateway(gw)
                launcher.stop()
    return {
        "checkpoint": portable_path(checkpoint),
        "architecture": meta.model_name,
        "image_size": size,
        "precision": precision,
        "export_s": export_s,
        "triton_start_s": triton_start_s,
        "gateway_start_s": gateway_start_s,
        "baseline_start_s": baseline_start_s,
        **measured,
    }


async def _measure(
    args: Any,
    triton: TritonOptions,
    gw: GatewayOptions,
    baseline_url: str,
    size: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    levels = list(args.served_concurrency)
    top = max(levels)
    senders = await measure.senders_for(
        args.images,
        args.sample,
        {
            GATEWAY: ("http", {"url": gw.url}),
            BASELINE: ("http", {"url": baseline_url}),
            TRITON: ("triton", {"grpc_url": triton.grpc_url, "model": MODEL_NAME, "batch": 1}),
        },
        top,
    )
    settings = Settings()  # the environment the gateway process was started with
    decoder = decoder_for(settings)
    senders[DECODE] = decode_sender(decoder, measure.photo_files(args.images, args.sample), size)
    stages = StageProbe(gw.url + "/metrics")
    try:
        matrix = await measure.run_matrix(
            senders,
            {GATEWAY: (triton.metrics_url, MODEL_NAME), TRITON: (triton.metrics_url, MODEL_NAME)},
            levels,
            runs=args.runs,
            duration_s=args.duration,
            max_requests=args.max_requests,
            probes={GATEWAY: stages},
            say=say,
        )
    finally:
        decoder.close()
    profile_level = PROFILE_LEVEL if PROFILE_LEVEL in levels else top
    say(f"  py-spy profile of the gateway at c={profile_level}")
    profile = await _profile(args, gw, senders[GATEWAY], profile_level)
    return {
        "levels": levels,
        "decode_threads": settings.decode_threads,
        "matrix": {
            t: {str(c): [r.as_dict() for r in rs] for c, rs in by_c.items()}
            for t, by_c in matrix.results.items()
        },
        "stages": {str(c): runs for c, runs in stages.results.items()},
        "profile": profile,
    }


def decode_sender(decoder: Decoder, photos: list[Path], size: int) -> SendFn:
    """One "request" = the gateway's decode of one upload (header check, hash, decode, resize), so the
    load generator's concurrency is the number of uploads the gateway would be decoding at once."""
    bodies = [p.read_bytes() for p in photos]

    async def send(i: int) -> str:
        try:
            await decoder.decode(bodies[i % len(bodies)], size)
        except ImageError:
            return "error"
        return "ok"

    return send


_STAGE = re.compile(r'^stage_duration_seconds_(sum|count)\{stage="(\w+)"\}\s+(\S+)$', re.M)


def parse_stages(text: str) -> dict[str, float]:
    """``{"decode_sum": …, "decode_count": …, …}`` from the gateway's /metrics text."""
    return {f"{stage}_{kind}": float(value) for kind, stage, value in _STAGE.findall(text)}


class StageProbe:
    """The gateway's stage histograms scraped around each of its levels: mean seconds per request in
    decode (queue for a decode thread included), infer (the Triton call) and the handler in total,
    beside the client's mean latency (the level's warm-up requests are sent before the first scrape)."""

    def __init__(self, metrics_url: str) -> None:
        self.metrics_url = metrics_url
        self.results: dict[int, list[dict[str, float]]] = {}
        self._before: dict[str, float] = {}

    async def _scrape(self) -> dict[str, float]:
        async with httpx.AsyncClient() as client:
            response = await client.get(self.metrics_url, timeout=10.0)
            response.raise_for_status()
            return parse_stages(response.text)

    async def before(self, level: int) -> None:
        self._before = await self._scrape()

    async def after(self, level: int, result: LevelResult) -> None:
        after = await self._scrape()
        delta = {k: after.get(k, 0.0) - self._before.get(k, 0.0) for k in after}
        row: dict[str, float] = {
            "client_avg_s": result.avg_us / 1e6,
            "requests": delta.get("total_count", 0.0),
        }
        for stage in STAGES:
            count = delta.get(f"{stage}_count", 0.0)
            row[f"{stage}_s"] = delta.get(f"{stage}_sum", 0.0) / count if count else float("nan")
        self.results.setdefault(level, []).append(row)


def py_spy() -> Path | None:
    beside = Path(sys.executable).parent / "py-spy"
    found = beside if beside.is_file() else shutil.which("py-spy")
    return Path(found) if found else None


async def _profile(args: Any, gw: GatewayOptions, send: SendFn, level: int) -> dict[str, Any]:
    """One more gateway level, outside the matrix (sampling costs CPU), under ``py-spy record``."""
    out: dict[str, Any] = {"level": level, "samples": 0, "top": [], "error": None, "command": None}
    tool, pid = py_spy(), read_pid(gw.pid_file)
    if tool is None or pid is None:
        out["error"] = "py-spy is not installed" if tool is None else "the gateway's pid is unknown"
        return out
    raw = args.work.resolve() / "served" / "gateway-profile.txt"
    raw.unlink(missing_ok=True)
    argv = [
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--rate",
        "200",
        "--nonblocking",
        "--output",
        str(raw),
    ]
    out["command"] = "py-spy " + " ".join(portable_arg(a) for a in argv).replace(str(pid), "<gateway pid>")
    proc = subprocess.Popen([str(tool), *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    await asyncio.sleep(0.5)  # attach
    if proc.poll() is None:
        await run_level(
            send, level, duration_s=max(args.duration, 1.0), max_requests=max(args.max_requests, 4 * level),
            warmup_requests=level,
        )  # fmt: skip
        proc.send_signal(signal.SIGINT)
    try:
        log, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        log, _ = proc.communicate()
    if not raw.is_file() or raw.stat().st_size == 0:
        out["error"] = f"py-spy could not profile the gateway (exit {proc.returncode}): {log.strip()[-300:]}"
        return out
    out.update(top_functions(raw.read_text()))
    return out


_FRAME = re.compile(r"^(?P<fn>.*) \((?P<file>.*?)(?::\d+)?\)$")


def _frame(text: str) -> str:
    match = _FRAME.match(text)
    if not match:
        return text
    file = match["file"]
    return f"{match['fn']} ({portable_path(file) if file.startswith('/') else file})"


def top_functions(folded: str, keep: int = PROFILE_TOP) -> dict[str, Any]:
    """Collapsed stacks (``f1;f2;f3 count`` lines) → samples and the functions with the most self time,
    each ``[function, self %, inclusive %]`` of all (non-idle) samples; line numbers dropped."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";")]
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    top = (
        [[fn, 100.0 * n / total, 100.0 * inclusive[fn] / total] for fn, n in own.most_common(keep)]
        if total
        else []
    )
    return {"samples": total, "top": top}
