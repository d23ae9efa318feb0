"""Derive the local CPU Triton repository from the canonical one — never edited by hand.

The canonical ``model_repository/cats_dogs`` targets Triton's onnxruntime backend on a GPU, which
PyPI's Triton (the nvidia-pytriton wheel) lacks. The derived copy keeps everything a client can
observe — model name, inputs, outputs, label file, max batch size, dynamic batching, warmup,
version policy, parameters — and swaps only how it runs: the python backend on ``KIND_CPU``
instances executing the same ``model.onnx`` (hard-linked, so it is byte-identical) with
onnxruntime through ``export/triton_python_model.py``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from contract.model import CONFIG_FILENAME, LABELS_FILENAME, MODEL_NAME
from export.triton_config import read_config, write_config
from export.versions import version_dirs

TEMPLATE = Path(__file__).with_name("triton_python_model.py")
# Fields that must be identical between the canonical and the derived config: what clients observe.
SHARED_FIELDS = (
    "name",
    "max_batch_size",
    "input",
    "output",
    "dynamic_batching",
    "model_warmup",
    "version_policy",
)


# How the CPU is split between instances and onnxruntime threads, when not given (None = auto):
# measured by `make cpu-sweep` (docs/benchmarks/CPU_SWEEP.md, 2 cores, max queue delay 0). A model
# that infers one photo in a few ms on one thread (the bundled 96 px CNN: ~8 ms) does 2.1x the img/s
# at c=16 with one single-thread instance per core (221 vs 105) at the same lone-request latency:
# intra-op threads cost more than they parallelise on small convolutions, and a lone python-backend
# instance showed ~0.5 s queue stalls that a second instance hides. A heavy one (ResNet18 at 224 px:
# ~39 ms on one thread) serves a lone request 1.5x faster with every core in one instance (36.9 vs
# 25.2 img/s at c=1) and gives up ~11 % at c=16 (42.1 vs 47.3), so it keeps one instance. The
# boundary lies between the two measured models; this is its midpoint.
SMALL_MODEL_MS = 20.0


@dataclass(frozen=True, kw_only=True)
class CpuOptions:
    # None = chosen from the model's measured single-thread latency (resolve_layout).
    instance_count: int | None = None
    intra_op_threads: int | None = None
    # python-backend environment: a venv dir (or packed env) with numpy<2 + onnxruntime; "" = the
    # python3 first on PATH when Triton starts (the serving launcher puts .venv-triton there).
    execution_env_path: str = ""
    # Which file of each version the backend opens: fp32 | int8, or auto (python -m export's default):
    # INT8 when its gate passes on the labelled test split, else FP32 — resolved by run_export.
    variant: str = "fp32"

    # Why this layout (auto only): written to the config as the parameter cpu_layout.
    layout_reason: str = ""

    def __post_init__(self) -> None:
        if (self.instance_count is not None and self.instance_count < 1) or (
            self.intra_op_threads is not None and self.intra_op_threads < 0
        ):
            raise ValueError("instance_count must be >= 1 and intra_op_threads >= 0")
        if self.variant not in {"fp32", "int8", "auto"}:
            raise ValueError(f"variant must be fp32, int8 or auto, not {self.variant!r}")


def available_cores() -> int:
    """Cores this process may run on (a cgroup/affinity limit, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def single_thread_latency_ms(onnx_path: Path, image_size: int, runs: int = 7) -> float:
    """Median batch-1 latency of ``onnx_path`` on one onnxruntime thread (after one warm-up run)."""
    import time

    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.zeros((1, image_size, image_size, 3), dtype=np.uint8)}
    session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)[len(times) // 2]


def resolve_layout(canonical_model_dir: Path, options: CpuOptions) -> CpuOptions:
    """Fill an auto (None) instance count / thread count from the newest version's measured cost."""
    if options.instance_count is not None and options.intra_op_threads is not None:
        return options
    canonical = read_config(canonical_model_dir / CONFIG_FILENAME)
    newest = max(version_dirs(canonical_model_dir))
    ms = single_thread_latency_ms(
        canonical_model_dir / str(newest) / "model.onnx", int(canonical.input[0].dims[0])
    )
    cores = available_cores()
    small = ms <= SMALL_MODEL_MS
    instances = options.instance_count if options.instance_count is not None else (cores if small else 1)
    threads = options.intra_op_threads if options.intra_op_threads is not None else (1 if small else cores)
    # "auto" only when nothing was given: a rebuild (make rollback) then measures the new newest
    # version again; a partly given layout is kept as it stands.
    both_auto = options.instance_count is None and options.intra_op_threads is None
    kind, compared = ("auto" if both_auto else "partly given"), ("<=" if small else ">")
    reason = (
        f"{kind}: {ms:.1f} ms per photo on 1 thread {compared} {SMALL_MODEL_MS:g} ms, "
        f"{cores} cores -> {instances} instance(s) x {threads} thread(s)"
    )
    return replace(options, instance_count=instances, intra_op_threads=threads, layout_reason=reason)


def derive_config(canonical: mc.ModelConfig, options: CpuOptions | None = None) -> mc.ModelConfig:
    opts = options or CpuOptions()
    if opts.variant == "auto":
        raise ValueError("variant 'auto' must be resolved to fp32 or int8 before deriving the config")
    if opts.instance_count is None or opts.intra_op_threads is None:
        raise ValueError("an auto CPU layout must be resolved (resolve_layout) before deriving the config")
    derived = mc.ModelConfig()
    derived.CopyFrom(canonical)
    derived.ClearField("platform")
    derived.ClearField("default_model_filename")
    derived.backend = "python"
    derived.optimization.execution_accelerators.ClearField("gpu_execution_accelerator")
    if derived.optimization == mc.ModelOptimizationPolicy():
        derived.ClearField("optimization")
    del derived.instance_group[:]
    derived.instance_group.append(
        mc.ModelInstanceGroup(kind=mc.ModelInstanceGroup.KIND_CPU, count=opts.instance_count)
    )
    derived.parameters["ort_intra_op_threads"].string_value = str(opts.intra_op_threads)
    derived.parameters["onnx_model_filename"].string_value = (
        "model.int8.onnx" if opts.variant == "int8" else "model.onnx"
    )
    derived.parameters["precision"].string_value = opts.variant
    if opts.layout_reason:
        derived.parameters["cpu_layout"].string_value = opts.layout_reason
    if opts.execution_env_path:
        derived.parameters["EXECUTION_ENV_PATH"].string_value = opts.execution_env_path
    return derived


def mismatches(canonical: mc.ModelConfig, derived: mc.ModelConfig) -> list[str]:
    """Fields that differ where they must not; [] when the derived config is faithful."""
    problems = [f for f in SHARED_FIELDS if getattr(canonical, f) != getattr(derived, f)]
    for key, value in canonical.parameters.items():
        if key not in derived.parameters or derived.parameters[key] != value:
            problems.append(f"parameters[{key}]")
    return problems


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem: a copy is still the same bytes
        shutil.copy2(src, dst)


def build(canonical_model_dir: Path, cpu_repository: Path, options: CpuOptions | None = None) -> Path:
    """(Re)generate ``<cpu_repository>/<name>/`` from the canonical model dir; returns that dir.

    Built outside the repository (Triton would take a staging folder inside it for a model) and
    swapped in with renames, so a running Triton never sees a half-written model.
    """
    canonical = read_config(canonical_model_dir / CONFIG_FILENAME)
    derived = derive_config(canonical, resolve_layout(canonical_model_dir, options or CpuOptions()))
    problems = mismatches(canonical, derived)
    if problems:  # a bug in derive_config, never a user error
        raise RuntimeError(f"derived CPU config differs from the canonical one in {problems}")
    cpu_repository.mkdir(parents=True, exist_ok=True)
    target = cpu_repository / (canonical.name or MODEL_NAME)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-staging-", dir=cpu_repository.parent))
    try:
        write_config(derived, staging / CONFIG_FILENAME)
        shutil.copy2(canonical_model_dir / LABELS_FILENAME, staging / LABELS_FILENAME)
        for version in version_dirs(canonical_model_dir):
            src, dst = canonical_model_dir / str(version), staging / str(version)
            dst.mkdir()
            for item in src.iterdir():
                if item.is_file():
                    _link_or_copy(item, dst / item.name)
            shutil.copy2(TEMPLATE, dst / "model.py")
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=cpu_repository.parent)) / "old"
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old.parent, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
