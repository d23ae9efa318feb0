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
from dataclasses import dataclass
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


@dataclass(frozen=True, kw_only=True)
class CpuOptions:
    instance_count: int = 1
    intra_op_threads: int = 2
    # python-backend environment: a venv dir (or packed env) with numpy<2 + onnxruntime; "" = the
    # python3 first on PATH when Triton starts (the serving launcher puts .venv-triton there).
    execution_env_path: str = ""
    # Which file of each version the backend opens: fp32 | int8, or auto (python -m export's default):
    # INT8 when its gate passes on the labelled test split, else FP32 — resolved by run_export.
    variant: str = "fp32"

    def __post_init__(self) -> None:
        if self.instance_count < 1 or self.intra_op_threads < 0:
            raise ValueError("instance_count must be >= 1 and intra_op_threads >= 0")
        if self.variant not in {"fp32", "int8", "auto"}:
            raise ValueError(f"variant must be fp32, int8 or auto, not {self.variant!r}")


def derive_config(canonical: mc.ModelConfig, options: CpuOptions | None = None) -> mc.ModelConfig:
    opts = options or CpuOptions()
    if opts.variant == "auto":
        raise ValueError("variant 'auto' must be resolved to fp32 or int8 before deriving the config")
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
    derived = derive_config(canonical, options)
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
