"""``python -m benchmarks.gpu_ort``: the exported model on a GPU with onnxruntime-gpu (issue #3, item 10).

Two steps, because the GPU machine has none of this project's environment:

``pack`` (here, project venv)
    writes the served models (``model.onnx`` + ``model.fp16.onnx`` of one export) and a split of
    real, labelled images exactly as the exporter's gate reads them (uint8 [N, S, S, 3]) into one folder.
``run`` (on the GPU machine; needs only numpy + onnxruntime-gpu)
    measures, for each execution provider (CUDA, TensorRT) and precision (FP32, FP16), the
    parity against the FP32 model on the CPU provider (max |Δp|, argmax agreement, accuracy) and
    the throughput at batch 1, 8, 32, 128, twice: with the batch in host memory (``session.run``,
    what a server pays per call) and resident on the GPU (I/O binding: the engine alone). A
    provider that cannot start is reported with ORT's reason, never silently replaced by the CPU.

Not a test: it prints a markdown table for BENCHMARKS.md and writes the same numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from imaging.cli import ArgumentParser

BATCH_SIZES = (1, 8, 32, 128)
FP32_FILE, FP16_FILE, IMAGES_FILE = "model.onnx", "model.fp16.onnx", "images.npz"


# ---------------------------------------------------------------------------------------------- pack
def pack(args: argparse.Namespace) -> None:
    from export.check_images import DataLocation, load_split  # project venv only

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for name in (FP32_FILE, FP16_FILE):
        source = args.model_dir / name
        if not source.is_file():
            sys.exit(f"{source} is missing: export with --fp16 first (python -m export ... --fp16)")
        shutil.copy2(source, out / name)
    split = load_split(
        args.split, args.image_size, location=DataLocation(manifest=args.manifest, cache_dir=args.cache_dir)
    )
    if split is None:
        sys.exit(f"no cached {args.image_size}px images for split {args.split!r} of {args.manifest}")
    np.savez_compressed(out / IMAGES_FILE, images=split.images, labels=split.labels, source=split.source)
    print(f"packed {len(split.images)} images ({split.source}) and 2 models into {out}")


# ----------------------------------------------------------------------------------------------- run
def _gpu_name() -> str:
    try:
        query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        return subprocess.run(query, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown GPU"


def _providers(provider: str, fp16: bool, cache_dir: Path, input_name: str, image_size: int) -> list[Any]:
    if provider == "CUDAExecutionProvider":
        return [("CUDAExecutionProvider", {"device_id": 0})]
    if provider == "TensorrtExecutionProvider":
        options = {
            "device_id": 0,
            "trt_fp16_enable": fp16,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache_dir),
            # One engine profile covering every measured batch, so timing never includes a rebuild.
            "trt_profile_min_shapes": f"{input_name}:1x{image_size}x{image_size}x3",
            "trt_profile_opt_shapes": f"{input_name}:32x{image_size}x{image_size}x3",
            "trt_profile_max_shapes": f"{input_name}:{max(BATCH_SIZES)}x{image_size}x{image_size}x3",
        }
        return [("TensorrtExecutionProvider", options), ("CUDAExecutionProvider", {"device_id": 0})]
    return [provider]


def _session(ort: Any, model: Path, providers: list[Any]) -> Any:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(model), options, providers=providers)


def _predict(session: Any, images: np.ndarray, batch: int = 32) -> np.ndarray:
    name = session.get_inputs()[0].name
    parts = [session.run(None, {name: images[i : i + batch]})[0] for i in range(0, len(images), batch)]
    return np.concatenate(parts).astype(np.float32)


def _batch_of(images: np.ndarray, size: int) -> np.ndarray:
    reps = -(-size // len(images))
    return np.ascontiguousarray(np.concatenate([images] * reps)[:size])


def _time_calls(call: Any, seconds: float, min_calls: int = 20) -> tuple[float, float]:
    """Median and p90 seconds per call, after warm-up, over >= ``seconds`` and >= ``min_calls``."""
    for _ in range(10):
        call()
    durations: list[float] = []
    begin = time.perf_counter()
    while time.perf_counter() - begin < seconds or len(durations) < min_calls:
        start = time.perf_counter()
        call()
        durations.append(time.perf_counter() - start)
    durations.sort()
    return statistics.median(durations), durations[int(0.9 * (len(durations) - 1))]


def _throughput(
    ort: Any, session: Any, batch: np.ndarray, seconds: float, on_device: bool
) -> dict[str, float]:
    name = session.get_inputs()[0].name
    if on_device:
        binding = session.io_binding()
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(batch, "cuda", 0))
        binding.bind_output(session.get_outputs()[0].name, "cuda", 0)

        def call() -> None:
            session.run_with_iobinding(binding)

    else:

        def call() -> None:
            session.run(None, {name: batch})

    median, p90 = _time_calls(call, seconds)
    return {"img_s": len(batch) / median, "ms_median": median * 1000, "ms_p90": p90 * 1000}


def run(args: argparse.Namespace) -> None:
    import onnxruntime as ort

    try:  # CUDA/cuDNN from the nvidia-* wheels beside torch, when they are installed
        ort.preload_dlls()
    except Exception as exc:  # LD_LIBRARY_PATH may still provide them; the session says if not
        print(f"preload_dlls: {exc!r}")
    data = np.load(args.data / IMAGES_FILE)
    images, labels = data["images"], data["labels"]
    models = {"fp32": args.data / FP32_FILE, "fp16": args.data / FP16_FILE}
    env = {
        "gpu": _gpu_name(),
        "onnxruntime": ort.__version__,
        "available_providers": ort.get_available_providers(),
        "images": f"{len(images)} × {images.shape[1]}px: {data['source']}",
    }
    print(json.dumps(env, indent=1), flush=True)

    cpu = _session(ort, models["fp32"], ["CPUExecutionProvider"])
    reference = _predict(cpu, images)
    input_name, image_size = cpu.get_inputs()[0].name, images.shape[1]
    rows: list[dict[str, Any]] = []
    rows.append(_measure(ort, "CPUExecutionProvider", "fp32", cpu, images, labels, reference, args, False))
    for provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        for precision in ("fp32", "fp16"):
            # TensorRT builds its own FP16 engine from the FP32 graph; CUDA runs the FP16 ONNX variant.
            model = models["fp32"] if provider.startswith("Tensorrt") else models[precision]
            try:
                session = _session(
                    ort,
                    model,
                    _providers(provider, precision == "fp16", args.engine_cache, input_name, image_size),
                )
            except Exception as exc:  # any failure to start is the result to report
                rows.append({"provider": provider, "precision": precision, "error": repr(exc)[:400]})
                print(f"{provider} {precision}: could not start: {exc!r}", flush=True)
                continue
            if session.get_providers()[0] != provider:
                reason = f"ORT fell back to {session.get_providers()} (see its log above for why)"
                rows.append({"provider": provider, "precision": precision, "error": reason})
                print(f"{provider} {precision}: {reason}", flush=True)
                continue
            rows.append(_measure(ort, provider, precision, session, images, labels, reference, args, True))
    (args.out).write_text(json.dumps({"environment": env, "results": rows}, indent=1))
    print(_markdown(rows))


def _measure(
    ort: Any,
    provider: str,
    precision: str,
    session: Any,
    images: np.ndarray,
    labels: np.ndarray,
    reference: np.ndarray,
    args: argparse.Namespace,
    gpu: bool,
) -> dict[str, Any]:
    probabilities = _predict(session, images)
    row: dict[str, Any] = {
        "provider": provider,
        "precision": precision,
        "max_abs_diff": float(np.abs(probabilities - reference).max()),
        "argmax_agreement": float((probabilities.argmax(1) == reference.argmax(1)).mean()),
        "accuracy": float((probabilities.argmax(1) == labels).mean()),
        "host": {},
        "device": {},
    }
    for size in BATCH_SIZES:
        batch = _batch_of(images, size)
        row["host"][size] = _throughput(ort, session, batch, args.seconds, on_device=False)
        if gpu:
            row["device"][size] = _throughput(ort, session, batch, args.seconds, on_device=True)
        print(provider, precision, size, row["host"][size], row["device"].get(size), flush=True)
    return row


def _markdown(rows: list[dict[str, Any]]) -> str:
    head = "| provider | precision | max abs Δp vs CPU FP32 | argmax agree | accuracy |"
    lines = [head + "".join(f" img/s b{b} (host / on GPU) |" for b in BATCH_SIZES)]
    lines.append("|---" * (5 + len(BATCH_SIZES)) + "|")
    for row in rows:
        name = row["provider"].replace("ExecutionProvider", "")
        if "error" in row:
            lines.append(
                f"| {name} | {row['precision']} | not run: {row['error']} |" + " |" * (2 + len(BATCH_SIZES))
            )
            continue
        cells = []
        for size in BATCH_SIZES:
            host = f"{row['host'][size]['img_s']:,.0f}"
            device = row["device"].get(size)
            cells.append(f" {host} / {device['img_s']:,.0f} |" if device else f" {host} |")
        lines.append(
            f"| {name} | {row['precision']} | {row['max_abs_diff']:.2e} | {row['argmax_agreement']:.2%} "
            f"| {row['accuracy']:.4f} |" + "".join(cells)
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(
        prog="python -m benchmarks.gpu_ort",
        description=__doc__.split("\n\n")[0],
        epilog="examples:\n  python -m benchmarks.gpu_ort pack --help\n"
        "  python -m benchmarks.gpu_ort run --help",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="collect one export's models and a labelled split into a folder")
    p.add_argument("--model-dir", type=Path, required=True, help="version folder holding model(.fp16).onnx")
    p.add_argument("--manifest", type=Path, required=True, help="data manifest (splits and labels)")
    p.add_argument("--cache-dir", type=Path, required=True, help="preprocess cache root")
    p.add_argument("--image-size", type=int, required=True, help="the model's input size (pixels)")
    p.add_argument("--split", default="test", help="manifest split to pack (default test)")
    p.add_argument("--out", type=Path, required=True, help="folder to write")
    r = sub.add_parser("run", help="measure parity and throughput per provider on this machine's GPU")
    r.add_argument("--data", type=Path, required=True, help="a folder written by `pack`")
    r.add_argument("--seconds", type=float, default=1.5, help="timed seconds per measurement (default 1.5)")
    r.add_argument(
        "--engine-cache", type=Path, default=Path("/tmp/trt_engines"), help="TensorRT engine cache"
    )
    r.add_argument("--out", type=Path, default=Path("gpu_ort.json"), help="JSON results file")
    args = parser.parse_args(argv)
    pack(args) if args.command == "pack" else run(args)


if __name__ == "__main__":
    main()
