"""``python -m benchmarks.int8_bench``: ONNX Runtime throughput on this CPU, FP32 vs INT8 (QDQ static).

Not a test: it prints a markdown table for BENCHMARKS.md. Both models are measured side by side in
one process, interleaved run by run (the machine is shared and noisy, so only ratios measured
together and medians of repeated runs mean anything). By default the network is ResNet18 with
random weights: throughput does not depend on the weight values, and no pretrained download is
needed. ``--checkpoint`` benchmarks a trained model instead.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from benchmarks.measure import ort_session
from contract.model import INPUT_NAME
from export.check_images import synthetic_images
from export.onnx_export import export_onnx
from export.quantize import quantize_int8
from imaging.cli import ArgumentParser
from training.models import PetClassifier, get_model


def _throughput(sess: ort.InferenceSession, batch: np.ndarray, seconds: float) -> float:
    """Images per second over at least ``seconds`` (after one warm-up call)."""
    sess.run(None, {INPUT_NAME: batch})
    calls, start = 0, time.perf_counter()
    while True:
        sess.run(None, {INPUT_NAME: batch})
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= 3:
            return calls * len(batch) / elapsed


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m benchmarks.int8_bench",
        description=__doc__.splitlines()[0] if __doc__ else "",
        epilog="""examples:
  python -m benchmarks.int8_bench
  python -m benchmarks.int8_bench --checkpoint artifacts/checkpoints/last.pt""",
    )
    p.add_argument("--model", default="resnet18", help="training.models architecture (random weights)")
    p.add_argument(
        "--checkpoint", type=Path, help="benchmark this trained checkpoint instead of random weights"
    )
    p.add_argument("--image-size", type=int, default=224, help="input side in pixels (default 224)")
    p.add_argument("--batch-sizes", default="1,16", help="comma-separated batch sizes (default 1,16)")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default 2)")
    p.add_argument(
        "--runs", type=int, default=3, help="timed runs per model and batch size; the median is kept"
    )
    p.add_argument("--seconds", type=float, default=2.0, help="minimum seconds per timed run")
    p.add_argument("--calibration-images", type=int, default=32, help="synthetic images to calibrate INT8 on")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.runs < 3:
        print("error: --runs must be >= 3 (the table reports medians)", file=sys.stderr)
        return 2
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    if args.checkpoint is not None:
        from training.checkpoint import load_checkpoint

        model, meta = load_checkpoint(args.checkpoint)
        size, label = meta.image_size, f"{meta.model_name} ({args.checkpoint})"
    else:
        torch.manual_seed(0)
        model = PetClassifier(get_model(args.model)).eval()
        size, label = args.image_size, f"{args.model} (random weights)"
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        fp32 = export_onnx(model, size, Path(tmp) / "model.onnx")
        calibration = synthetic_images(args.calibration_images, size, seed=7).images
        int8 = quantize_int8(fp32, Path(tmp) / "model.int8.onnx", calibration)
        sessions = {"FP32": ort_session(fp32, args.threads), "INT8": ort_session(int8, args.threads)}
        rng = np.random.default_rng(0)
        results: dict[tuple[str, int], list[float]] = {}
        for bs in batch_sizes:
            batch = rng.integers(0, 256, (bs, size, size, 3), dtype=np.uint8)
            for _ in range(args.runs):
                for name, sess in sessions.items():  # interleaved: both see the same machine load
                    results.setdefault((name, bs), []).append(_throughput(sess, batch, args.seconds))
    command = "python -m benchmarks.int8_bench " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"\nONNX Runtime {ort.__version__}, {label}, {size}×{size}, {args.threads} threads, {_cpu_name()}")
    print(
        f"median of {args.runs} interleaved runs of ≥ {args.seconds:g} s each; command: `{command.strip()}`\n"
    )
    print("| batch | FP32 img/s | INT8 img/s | INT8 / FP32 | runs FP32 | runs INT8 |")
    print("|---:|---:|---:|---:|---|---|")
    for bs in batch_sizes:
        f, q = results[("FP32", bs)], results[("INT8", bs)]
        mf, mq = statistics.median(f), statistics.median(q)
        print(
            f"| {bs} | {mf:.1f} | {mq:.1f} | {mq / mf:.2f}× | "
            f"{', '.join(f'{v:.0f}' for v in f)} | {', '.join(f'{v:.0f}' for v in q)} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
