"""The suite's measurements, each bounded in count and time and aimed at 127.0.0.1 only.

Comparisons run interleaved inside each repetition (A, B, C, then A, B, C again, in a rotated
order), so every side sees the same machine load; the report keeps medians and paired ratios.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort
import torch

from benchmarks.loadgen import LevelResult, SendFn, run_level
from benchmarks.perf import gateway_sender, photo_files, triton_sender
from benchmarks.portable import portable_command
from contract.model import MODEL_NAME
from contract.paths import PROJECT_ROOT


@dataclass
class Matrix:
    """results[target][concurrency] = one LevelResult per repetition."""

    results: dict[str, dict[int, list[LevelResult]]] = field(default_factory=dict)

    def add(self, target: str, result: LevelResult) -> None:
        self.results.setdefault(target, {}).setdefault(result.concurrency, []).append(result)

    def median(self, target: str, concurrency: int, attr: str = "infer_per_s") -> float:
        return statistics.median(getattr(r, attr) for r in self.results[target][concurrency])

    def paired_ratio(self, a: str, b: str, concurrency: int, attr: str = "infer_per_s") -> float:
        """Median over repetitions of a/b, each pair measured back to back."""
        pairs = zip(self.results[a][concurrency], self.results[b][concurrency], strict=True)
        return statistics.median(getattr(x, attr) / max(getattr(y, attr), 1e-9) for x, y in pairs)


async def senders_for(
    images: Path, sample: int, specs: dict[str, tuple[str, dict[str, object]]], max_concurrency: int
) -> dict[str, SendFn]:
    """specs[name] = ("triton"|"http", options) → a ready sender per target."""
    out: dict[str, SendFn] = {}
    for name, (kind, opts) in specs.items():
        if kind == "triton":
            args = argparse.Namespace(images=images, sample=sample, timeout=60.0, **opts)
            out[name], _ = await triton_sender(args)
        else:
            args = argparse.Namespace(
                images=images, sample=sample, timeout=60.0, concurrency=[max_concurrency], **opts
            )
            out[name], _ = await gateway_sender(args)
    return out


class LevelProbe(Protocol):
    """Observes one target's levels from outside the load (e.g. server metrics scraped before and
    after); it runs between levels, never inside a timed one."""

    async def before(self, level: int) -> None: ...

    async def after(self, level: int, result: LevelResult) -> None: ...


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of ``pids`` and their live descendants (Triton's python stubs)."""
    from benchmarks.stack import process_tree

    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in {each for root in pids for each in process_tree(root)}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime (stat fields 14, 15)
    return total


@dataclass
class CpuProbe:
    """CPU milliseconds per request spent by each process group during a level (warm-up excluded).

    On a machine where client, gateway and Triton share the cores, throughput is bounded by the
    sum of these: the split says which process a ratio between two targets is paid by.
    """

    groups: dict[str, Sequence[int]]  # name → pids; the name "client" means this process
    per_level: dict[int, list[dict[str, float]]] = field(default_factory=dict)
    _start: dict[str, float] = field(default_factory=dict)

    def _now(self) -> dict[str, float]:
        return {
            name: time.process_time() if name == "client" else cpu_seconds(pids)
            for name, pids in self.groups.items()
        }

    async def before(self, level: int) -> None:
        self._start = self._now()

    async def after(self, level: int, result: LevelResult) -> None:
        end, n = self._now(), max(result.requests, 1)
        self.per_level.setdefault(level, []).append(
            {name: (end[name] - self._start[name]) * 1e3 / n for name in self.groups}
        )


async def run_matrix(
    senders: dict[str, SendFn],
    metrics: dict[str, tuple[str | None, str]],
    levels: Sequence[int],
    *,
    runs: int,
    duration_s: float,
    max_requests: int,
    images_per_request: dict[str, int] | None = None,
    probes: dict[str, LevelProbe] | None = None,
    say: Callable[[str], None] = print,
) -> Matrix:
    matrix = Matrix()
    names = list(senders)
    for rep in range(runs):
        for level in levels:
            order = names[rep % len(names) :] + names[: rep % len(names)]  # rotate who goes first
            for name in order:
                metrics_url, model = metrics.get(name, (None, MODEL_NAME))
                probe = (probes or {}).get(name)
                for i in range(max(2, level)):  # warm-up, outside what a probe observes
                    await senders[name](i)
                if probe is not None:
                    await probe.before(level)
                result = await run_level(
                    senders[name],
                    level,
                    duration_s=duration_s,
                    max_requests=max_requests,
                    metrics_url=metrics_url,
                    model=model,
                    images_per_request=(images_per_request or {}).get(name, 1),
                )
                if probe is not None:
                    await probe.after(level, result)
                matrix.add(name, result)
                say(
                    f"  run {rep + 1}/{runs} c={level:<3} {name:<18} {result.infer_per_s:7.1f} img/s "
                    f"p99 {result.p99_us / 1e3:7.1f} ms {result.status_counts}"
                )
    return matrix


@dataclass
class ScoringRun:
    images: int
    scored: int
    seconds: float
    img_per_s: float
    wall_s: float
    command: str


_DONE = re.compile(r"done: (\d+) scored, (\d+) already done, (\d+) failed of (\d+) in ([0-9.]+)s")


def run_scorer(source: Path, out: Path, grpc_url: str, extra: Sequence[str] = ()) -> ScoringRun:
    """``python -m scoring`` as a user runs it, into a fresh output (a rerun would skip everything)."""
    out.unlink(missing_ok=True)
    argv = ["--input", str(source), "--output", str(out), "--triton-url", grpc_url, "--no-progress", *extra]
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "scoring", *argv],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    wall = time.perf_counter() - start
    match = _DONE.search(proc.stderr)
    if proc.returncode not in (0, 1) or match is None:
        raise RuntimeError(f"scorer failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    scored, seconds = int(match.group(1)), float(match.group(5))
    return ScoringRun(
        images=int(match.group(4)),
        scored=scored,
        seconds=seconds,
        img_per_s=scored / seconds if seconds else 0.0,
        wall_s=wall,
        command="python -m scoring " + portable_command(argv),
    )


def write_manifest(files: Sequence[Path], path: Path) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path"])
        writer.writerows([[str(f.resolve())] for f in files])
    return path


# --- in-process engines ---------------------------------------------------------------------


def ort_session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _rate(call: Callable[[], object], batch: int, seconds: float) -> float:
    call()  # warm-up
    calls, start = 0, time.perf_counter()
    while True:
        call()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= 3:
            return calls * batch / elapsed


def gemm_gflops(*, threads: int, runs: int, seconds: float, n: int = 2048) -> dict[str, list[float]]:
    """Dense FP32 GFLOP/s (n×n matrix product) per library here, interleaved run by run.

    The best of them is the measured peak that model throughputs are compared with: a VM reports no
    boost clock to compute a theoretical one from, and the libraries differ (on this AMD CPU NumPy's
    OpenBLAS has been ~10 % faster than torch.mm and ONNX Runtime's MatMul)."""
    from onnx import TensorProto, helper

    torch.set_num_threads(threads)
    a, b = np.random.default_rng(0).random((2, n, n), dtype=np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    spec = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, n]) for name in "ABC"]
    graph = helper.make_graph([helper.make_node("MatMul", ["A", "B"], ["C"])], "gemm", spec[:2], spec[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    calls: dict[str, Callable[[], object]] = {
        "NumPy (OpenBLAS)": lambda: a @ b,
        "torch.mm": lambda: torch.mm(ta, tb),
        "ONNX Runtime MatMul": lambda: session.run(None, {"A": a, "B": b}),
    }
    flop = 2 * n**3
    results: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            results[name].append(_rate(call, 1, seconds) * flop / 1e9)
    return results


def engines(
    onnx_path: Path,
    model: torch.nn.Module,
    pixels: np.ndarray,
    batch_sizes: Sequence[int],
    *,
    runs: int,
    seconds: float,
    threads: int,
) -> dict[tuple[str, int], list[float]]:
    """ORT (the served file) vs PyTorch eager (the same weights), same uint8 batches, interleaved."""
    torch.set_num_threads(threads)
    session = ort_session(onnx_path, threads)
    results: dict[tuple[str, int], list[float]] = {}
    for bs in batch_sizes:
        batch = np.resize(pixels, (bs, *pixels.shape[1:]))
        tensor = torch.from_numpy(batch)

        def eager(t: torch.Tensor = tensor) -> object:
            with torch.inference_mode():
                return model(t)

        def onnx(b: np.ndarray = batch) -> object:
            return session.run(None, {"image": b})

        for _ in range(runs):
            for name, call in (("ONNX Runtime", onnx), ("PyTorch eager", eager)):
                results.setdefault((name, bs), []).append(_rate(call, bs, seconds))
    return results


def accuracy(onnx_path: Path, pixels: np.ndarray, labels: np.ndarray, threads: int) -> float:
    session = ort_session(onnx_path, threads)
    correct = 0
    for i in range(0, len(pixels), 32):
        probs = session.run(None, {"image": pixels[i : i + 32]})[0]
        correct += int((np.argmax(probs, axis=1) == labels[i : i + 32]).sum())
    return correct / len(pixels)


def labelled_photos(folder: Path, limit: int, class_names: Sequence[str]) -> tuple[list[Path], np.ndarray]:
    """Photos whose parent folder names their class (pets-dev: cat/, dog/), spread evenly."""
    files = [p for p in photo_files(folder, 10**9) if p.parent.name in class_names]
    step = max(1, len(files) // max(1, limit))
    files = files[::step][:limit]
    return files, np.array([list(class_names).index(p.parent.name) for p in files])


def manifest_split(manifest: Path, split: str, class_names: Sequence[str]) -> tuple[list[Path], np.ndarray]:
    """Photos of one split of a data manifest (``label,split,path`` columns, as training.data writes)."""
    with manifest.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("split") == split and r.get("label") in class_names]
    if not rows:
        raise FileNotFoundError(f"{manifest}: no rows of split {split!r} with labels {list(class_names)}")
    files = [Path(r["path"]) if Path(r["path"]).is_absolute() else manifest.parent / r["path"] for r in rows]
    return files, np.array([list(class_names).index(r["label"]) for r in rows])


def flops_per_image(model: torch.nn.Module, image_size: int) -> float:
    """FLOPs (2 per multiply-add) of one forward pass, counted by PyTorch's own flop counter."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.zeros(1, image_size, image_size, 3, dtype=torch.uint8))
    return float(counter.get_total_flops())
