"""The stock-image CPU variant: the canonical config on ``KIND_CPU``, still ``onnxruntime_onnx``.

The NGC Triton image carries the ONNX Runtime backend, so on a CPU-only cluster it can serve the
canonical ``model.onnx`` directly; only the instance group (and GPU-only accelerators) change.
It cannot run on this project's machines (the pip Triton has no ORT backend):
here it is generated, parsed strictly and compared field by field, never served.
"""

from __future__ import annotations

from tritonclient.grpc import model_config_pb2 as mc

from export.cpu_repository import SHARED_FIELDS

PLATFORM = "onnxruntime_onnx"


def derive_config(canonical: mc.ModelConfig, instance_count: int = 1) -> mc.ModelConfig:
    derived = mc.ModelConfig()
    derived.CopyFrom(canonical)
    derived.platform = PLATFORM
    derived.ClearField("backend")
    # TensorRT/CUDA accelerators only exist on a GPU instance; the ORT backend refuses them on CPU.
    derived.optimization.execution_accelerators.ClearField("gpu_execution_accelerator")
    if derived.optimization == mc.ModelOptimizationPolicy():
        derived.ClearField("optimization")
    del derived.instance_group[:]
    derived.instance_group.append(
        mc.ModelInstanceGroup(kind=mc.ModelInstanceGroup.KIND_CPU, count=instance_count)
    )
    return derived


def mismatches(canonical: mc.ModelConfig, derived: mc.ModelConfig) -> list[str]:
    problems = [f for f in SHARED_FIELDS if getattr(canonical, f) != getattr(derived, f)]
    problems += [
        f"parameters[{k}]" for k, v in canonical.parameters.items() if derived.parameters.get(k) != v
    ]
    if derived.platform != PLATFORM or any(
        g.kind != mc.ModelInstanceGroup.KIND_CPU for g in derived.instance_group
    ):
        problems.append("platform/instance_group")
    return problems
