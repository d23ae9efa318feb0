"""``python -m export``: the registered champion (or a run / checkpoint) → Triton repositories.

Exit codes: 0 exported; 1 refused by a gate or a check (nothing written); 2 bad arguments or a
model that does not exist.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

# Only light imports here: torch, onnx and mlflow load after argument parsing (see main), so
# --help and bad flags answer at once.
from contract.paths import (
    CPU_MODEL_REPOSITORY,
    EXPORT_ARTIFACT_DIR,
    MODEL_REPOSITORY,
    PROJECT_CACHE_DIR,
    PROJECT_MANIFEST,
    PROJECT_ROOT,
    TRITON_VENV,
)
from export.contract import DEFAULT_MIN_ACCURACY, MIN_PARITY_IMAGES
from export.cpu_repository import CpuOptions
from export.triton_config import ConfigError, ServingOptions
from imaging.cli import ArgumentParser
from training.registry import CHAMPION

PARAMS_FILE = PROJECT_ROOT / "params.yaml"
# The flags' defaults are the option classes' own (chosen by the CPU sweep, docs/benchmarks/CPU_SWEEP.md).
SERVING = ServingOptions()
# Export only writes files; the running server is the serving package's business.
NEXT_STEP = "next: `make reload` makes a running local Triton load it (`make export-onnx` runs it)"


def default_min_accuracy(params_file: Path = PARAMS_FILE) -> float:
    """``export.min_accuracy`` from params.yaml when set, else the built-in floor."""
    if params_file.is_file():
        params = yaml.safe_load(params_file.read_text()) or {}
        section = params.get("export") if isinstance(params, dict) else None
        if isinstance(section, dict) and "min_accuracy" in section:
            return float(section["min_accuracy"])
    return DEFAULT_MIN_ACCURACY


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m export",
        description="Export the registered model to ONNX and write the next Triton repository version.",
        epilog="""examples:
  python -m export                                   # the @champion → model_repository/cats_dogs/<next>
  python -m export --checkpoint artifacts/checkpoints/last.pt --int8
  python -m export --check model_repository/cats_dogs/1/model.onnx
exit codes (--check): 0 meets the contract, 1 it does not, 2 not a readable ONNX file.""",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--alias", default=None, help=f"registry alias to export (default {CHAMPION})")
    which.add_argument("--run-id", help="export the checkpoint of this MLflow run instead of an alias")
    which.add_argument(
        "--checkpoint", type=Path, help="export this checkpoint file (training.checkpoint format)"
    )
    which.add_argument(
        "--check",
        type=Path,
        metavar="ONNX",
        help="only verify that ONNX meets the serving contract, then exit",
    )
    p.add_argument(
        "--repository", type=Path, default=MODEL_REPOSITORY, help="canonical Triton repository root"
    )
    p.add_argument(
        "--cpu-repository", type=Path, default=CPU_MODEL_REPOSITORY, help="derived CPU repository root"
    )
    p.add_argument(
        "--artifact-dir",
        type=Path,
        default=EXPORT_ARTIFACT_DIR,
        help="copy of the new version's files + export.json at a fixed path (the DVC stage output)",
    )
    p.add_argument(
        "--no-cpu-repository", action="store_true", help="do not (re)build the derived CPU repository"
    )
    p.add_argument(
        "--manifest", type=Path, default=PROJECT_MANIFEST, help="data manifest (splits and labels)"
    )
    p.add_argument(
        "--no-local-data",
        action="store_true",
        help="the model's data is not on this machine (e.g. the bundled model): gate on the test metrics "
        "recorded with it in MLflow and check parity on synthetic images instead of --manifest",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=PROJECT_CACHE_DIR,
        help="preprocess cache root (<dir>/<size>/<sha>.npy)",
    )
    p.add_argument(
        "--min-accuracy",
        type=float,
        default=None,
        help="gate floor on test accuracy (default: params.yaml export.min_accuracy, "
        f"else {DEFAULT_MIN_ACCURACY})",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="export even if the promotion gate refuses (recorded as forced) or this run is already served",
    )
    p.add_argument(
        "--int8",
        action="store_true",
        help="also write the INT8 (QDQ static) CPU variant, with its gate (--cpu-variant auto/int8 imply it)",
    )
    p.add_argument("--fp16", action="store_true", help="also write the FP16 GPU variant, with its gate")
    p.add_argument(
        "--tensorrt-fp16", action="store_true", help="enable the TensorRT FP16 accelerator in the GPU config"
    )
    p.add_argument(
        "--max-batch-size",
        type=int,
        default=SERVING.max_batch_size,
        help="Triton max_batch_size (default %(default)s)",
    )
    p.add_argument(
        "--preferred-batch-sizes",
        type=_batch_sizes,
        default=SERVING.preferred_batch_sizes,
        help="dynamic batching sizes, e.g. 8,16,32; '' for none (default from docs/benchmarks/CPU_SWEEP.md: "
        f"{','.join(map(str, SERVING.preferred_batch_sizes)) or 'none'})",
    )
    p.add_argument(
        "--max-queue-delay-us",
        type=int,
        default=SERVING.max_queue_delay_us,
        help="dynamic batching max queue delay in µs (default, from the CPU sweep: %(default)s)",
    )
    p.add_argument(
        "--max-queue-size",
        type=int,
        default=SERVING.max_queue_size,
        help="requests queued before Triton rejects",
    )
    p.add_argument(
        "--queue-timeout-us",
        type=int,
        default=SERVING.queue_timeout_us,
        help="queued request timeout before REJECT (µs)",
    )
    p.add_argument(
        "--gpu-instances", type=int, default=1, help="KIND_GPU instance count in the canonical config"
    )
    p.add_argument(
        "--cpu-instances",
        type=int,
        default=None,
        help="KIND_CPU instance count in the CPU repository (default: auto, from the model's measured "
        "single-thread latency: one instance per core for a small model, one for a heavy one; "
        "docs/benchmarks/CPU_SWEEP.md)",
    )
    p.add_argument(
        "--cpu-threads",
        type=int,
        default=None,
        help="onnxruntime intra-op threads per CPU instance (default: auto, like --cpu-instances; 0 = ORT's)",
    )
    p.add_argument(
        "--cpu-variant",
        choices=("auto", "fp32", "int8"),
        default="auto",
        help="file the CPU repository serves: auto (default) = INT8 when its gate passes on the test split "
        "(agreement >= 99 %%, accuracy drop <= 0.5 pt), else FP32; int8 = INT8 or refuse the export",
    )
    p.add_argument(
        "--execution-env",
        default="",
        help=f"EXECUTION_ENV_PATH for the python backend (e.g. {TRITON_VENV}); "
        "default: the python3 first on PATH",
    )
    p.add_argument(
        "--parity-images",
        type=int,
        default=MIN_PARITY_IMAGES,
        help=f"images for the parity gate (>= {MIN_PARITY_IMAGES})",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from export.onnx_export import ExportError, verify_contract

    if args.check is not None:
        from google.protobuf.message import DecodeError

        if not args.check.is_file():
            print(f"error: {args.check}: no such file", file=sys.stderr)
            return 2
        try:
            verify_contract(args.check)
        except DecodeError:
            print(f"error: {args.check} is not an ONNX model (it does not parse as one)", file=sys.stderr)
            return 2
        except (ExportError, OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{args.check}: meets the serving contract (names, dtypes, dynamic batch axis)")
        return 0
    try:
        serving = ServingOptions(
            max_batch_size=args.max_batch_size,
            preferred_batch_sizes=args.preferred_batch_sizes,
            max_queue_delay_us=args.max_queue_delay_us,
            max_queue_size=args.max_queue_size,
            queue_timeout_us=args.queue_timeout_us,
            instance_count=args.gpu_instances,
            tensorrt_fp16=args.tensorrt_fp16,
        )
        cpu = CpuOptions(
            instance_count=args.cpu_instances,
            intra_op_threads=args.cpu_threads,
            execution_env_path=args.execution_env,
            variant=args.cpu_variant,
        )
    except ValueError as exc:
        parser.error(str(exc))

    from export.check_images import DataLocation
    from export.gate import GateRefusedError
    from export.parity import ParityError
    from export.pipeline import ExportRequest, already_served, refresh_artifacts, run_export
    from export.quantize import VariantRefusedError
    from export.source import SourceError, resolve

    try:
        source = resolve(alias=args.alias, run_id=args.run_id, checkpoint=args.checkpoint)
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    request = ExportRequest(
        repository=args.repository,
        cpu_repository=None if args.no_cpu_repository else args.cpu_repository,
        artifact_dir=args.artifact_dir,
        data=DataLocation(manifest=None if args.no_local_data else args.manifest, cache_dir=args.cache_dir),
        serving=serving,
        cpu=cpu,
        min_accuracy=args.min_accuracy if args.min_accuracy is not None else default_min_accuracy(),
        force=args.force,
        int8=args.int8 or args.cpu_variant == "int8",
        fp16=args.fp16,
        parity_images=args.parity_images,
    )
    served = already_served(source, request.repository)
    if served is not None and not args.force:
        print(
            f"{source.description} (MLflow run {source.mlflow_run_id}) is already served as Triton version "
            f"{served}; nothing to do (--force exports it again)"
        )
        if request.artifact_dir is not None:
            refresh_artifacts(request.repository, served, request.artifact_dir)
        return 0
    try:
        result = run_export(source, request)
    except (GateRefusedError, ParityError, VariantRefusedError, ExportError, ConfigError) as exc:
        print(f"error: {exc}\nnothing was written.", file=sys.stderr)
        return 1
    print(f"exported Triton version {result.version} of {result.model_dir.name}: {result.onnx_path}")
    if request.cpu_repository is not None:
        print(NEXT_STEP)
    return 0
