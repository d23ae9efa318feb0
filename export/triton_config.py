"""The canonical Triton ``config.pbtxt``, built as a ``ModelConfig`` protobuf and never as a string.

Writing goes through ``text_format.MessageToString`` and is followed by a strict parse of the
written file: ``text_format.Parse`` rejects unknown or misspelt fields, so a config Triton would
refuse cannot leave this module.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from google.protobuf.message import Message
from tritonclient.grpc import model_config_pb2 as mc

from contract.model import INPUT_NAME, LABELS_FILENAME, MODEL_NAME, ONNX_FILENAME, OUTPUT_NAME
from export.metadata import ModelFacts


class ConfigError(ValueError):
    """A config.pbtxt that does not parse into Triton's ModelConfig."""


@dataclass(frozen=True, kw_only=True)
class ServingOptions:
    """Batching and scheduling of the served model (the same for the GPU and the CPU repository)."""

    max_batch_size: int = 64
    preferred_batch_sizes: tuple[int, ...] = (8, 16, 32)
    # 0, not 2000: measured by `make cpu-sweep` (docs/benchmarks/CPU_SWEEP.md) for the served model,
    # a delay only made lone requests wait (c=1 img/s 107 at 0 vs 86 at 2000 µs) and cost img/s at
    # c=8 (206 vs 150); batches still form from whatever queues while both instances are busy.
    max_queue_delay_us: int = 0
    max_queue_size: int = 256
    queue_timeout_us: int = 5_000_000
    instance_count: int = 1
    num_versions: int = 2
    tensorrt_fp16: bool = False
    warmup_batch_sizes: tuple[int, ...] = field(default=(1,))

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        bad = [b for b in self.preferred_batch_sizes if not 1 <= b <= self.max_batch_size]
        if bad:
            raise ValueError(f"preferred batch sizes {bad} outside 1..{self.max_batch_size}")


def build_config(facts: ModelFacts, options: ServingOptions | None = None) -> mc.ModelConfig:
    opts = options or ServingOptions()
    size = facts.image_size
    config = mc.ModelConfig(
        name=MODEL_NAME,
        platform="onnxruntime_onnx",
        max_batch_size=opts.max_batch_size,
        default_model_filename=ONNX_FILENAME,
    )
    config.version_policy.latest.num_versions = opts.num_versions
    config.input.append(
        mc.ModelInput(
            name=INPUT_NAME, data_type=mc.TYPE_UINT8, format=mc.ModelInput.FORMAT_NHWC, dims=[size, size, 3]
        )
    )
    config.output.append(
        mc.ModelOutput(
            name=OUTPUT_NAME,
            data_type=mc.TYPE_FP32,
            dims=[len(facts.class_names)],
            label_filename=LABELS_FILENAME,
        )
    )
    batching = config.dynamic_batching
    batching.preferred_batch_size.extend(opts.preferred_batch_sizes)
    batching.max_queue_delay_microseconds = opts.max_queue_delay_us
    batching.default_queue_policy.max_queue_size = opts.max_queue_size
    batching.default_queue_policy.timeout_action = mc.ModelQueuePolicy.REJECT
    batching.default_queue_policy.default_timeout_microseconds = opts.queue_timeout_us
    config.instance_group.append(
        mc.ModelInstanceGroup(kind=mc.ModelInstanceGroup.KIND_GPU, count=opts.instance_count)
    )
    # Triton marks the model READY only after these samples ran, so the first user request is not the
    # one that pays for lazy initialisation (CUDA kernels, TensorRT engine build).
    for batch_size in opts.warmup_batch_sizes:
        warmup = config.model_warmup.add(name=f"zeros_batch_{batch_size}", batch_size=batch_size, count=1)
        sample = warmup.inputs[INPUT_NAME]
        sample.data_type = mc.TYPE_UINT8
        sample.dims.extend([size, size, 3])
        sample.zero_data = True
    if opts.tensorrt_fp16:
        accel = config.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")
        accel.parameters["precision_mode"] = "FP16"
        accel.parameters["max_workspace_size_bytes"] = str(1 << 30)
    set_parameters(config, facts.as_strings())
    return config


def set_parameters(config: mc.ModelConfig, values: dict[str, str]) -> None:
    for key, value in values.items():
        config.parameters[key].string_value = value


def describe_version(config: mc.ModelConfig, facts: ModelFacts) -> None:
    """Make ``config`` describe the model ``facts`` come from: its parameters and its tensor shapes.

    Used by rollback: the version served again may differ from the retired one in input size.
    """
    size, classes = facts.image_size, len(facts.class_names)
    set_parameters(config, facts.as_strings())
    del config.input[0].dims[:]
    config.input[0].dims.extend([size, size, 3])
    del config.output[0].dims[:]
    config.output[0].dims.append(classes)
    for warmup in config.model_warmup:
        for sample in warmup.inputs.values():
            del sample.dims[:]
            sample.dims.extend([size, size, 3])


def parameters(config: mc.ModelConfig) -> dict[str, str]:
    return {key: p.string_value for key, p in config.parameters.items()}


# Proto3 omits fields holding their default value; these are printed anyway because a reader of the
# config must see them (REJECT is enum value 0, so MessageToString would silently drop it).
ALWAYS_PRINTED = frozenset({"inference.ModelQueuePolicy.timeout_action"})


def _emit(message: Message, out: io.StringIO, indent: int) -> None:
    """text_format's output, plus the ALWAYS_PRINTED fields even when they hold their default."""
    present = list(message.ListFields())
    names = {fd.full_name for fd, _ in present}
    for fd in message.DESCRIPTOR.fields:
        if fd.full_name in ALWAYS_PRINTED and fd.full_name not in names:
            present.append((fd, getattr(message, fd.name)))
    pad = " " * indent
    for fd, value in sorted(present, key=lambda item: item[0].number):
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            for key in sorted(value):  # text_format's own order for maps
                entry = value.GetEntryClass()(key=key, value=value[key])
                text_format.PrintField(fd, entry, out, indent=indent)
            continue
        for item in value if fd.is_repeated else [value]:
            if fd.message_type is None:
                text_format.PrintField(fd, item, out, indent=indent)
                continue
            out.write(f"{pad}{fd.name} {{\n")
            _emit(item, out, indent + 2)
            out.write(f"{pad}}}\n")


def to_text(config: mc.ModelConfig) -> str:
    out = io.StringIO()
    _emit(config, out, 0)
    return out.getvalue()


def parse_text(text: str, source: str = "config") -> mc.ModelConfig:
    config = mc.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ConfigError(f"{source} is not a valid Triton ModelConfig: {exc}") from exc
    return config


def read_config(path: Path) -> mc.ModelConfig:
    if not path.is_file():
        raise ConfigError(f"no Triton config at {path}")
    return parse_text(path.read_text(), str(path))


def write_config(config: mc.ModelConfig, path: Path) -> Path:
    """Write atomically, then parse the file back: what is on disk is proven to be a ModelConfig."""
    text = to_text(config)
    header = "# Generated by `python -m export` from a ModelConfig protobuf. Do not edit by hand.\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(header + text)
    parsed = read_config(tmp)
    if parsed != config:
        tmp.unlink()
        raise ConfigError(f"{path}: config changed on a write/parse round trip")
    tmp.replace(path)
    return path
