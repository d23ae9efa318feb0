"""config.pbtxt is generated from Triton's ModelConfig protobuf and always parses back strictly."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from export.metadata import ModelFacts
from export.pipeline import ExportResult
from export.triton_config import (
    ConfigError,
    ServingOptions,
    build_config,
    parameters,
    parse_text,
    read_config,
    to_text,
    write_config,
)

FACTS = ModelFacts(
    class_names=("cat", "dog"),
    image_size=224,
    mean=(0.5, 0.5, 0.5),
    std=(0.25, 0.25, 0.25),
    architecture="resnet18",
)


def test_canonical_config_fields() -> None:
    config = build_config(FACTS)
    assert (config.name, config.platform, config.max_batch_size) == ("cats_dogs", "onnxruntime_onnx", 64)
    assert list(config.input[0].dims) == [224, 224, 3] and config.input[0].data_type == mc.TYPE_UINT8
    assert list(config.output[0].dims) == [2] and config.output[0].data_type == mc.TYPE_FP32
    assert config.output[0].label_filename == "labels.txt"
    batching = config.dynamic_batching
    assert list(batching.preferred_batch_size) == [8, 16, 32]
    # The default delay is 0 (chosen by the CPU sweep); a given one reaches the config.
    assert batching.max_queue_delay_microseconds == 0
    delayed = build_config(FACTS, ServingOptions(max_queue_delay_us=1234)).dynamic_batching
    assert delayed.max_queue_delay_microseconds == 1234
    policy = batching.default_queue_policy
    assert policy.timeout_action == mc.ModelQueuePolicy.REJECT
    assert policy.max_queue_size > 0 and policy.default_timeout_microseconds > 0
    assert [g.kind for g in config.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
    assert config.version_policy.latest.num_versions == 2
    warmup = config.model_warmup[0]
    assert warmup.batch_size >= 1 and warmup.inputs["image"].zero_data
    assert list(warmup.inputs["image"].dims) == [224, 224, 3]
    assert parameters(config)["class_names"] == '["cat", "dog"]' and parameters(config)["image_size"] == "224"
    assert not config.optimization.execution_accelerators.gpu_execution_accelerator


def test_tensorrt_fp16_flag_adds_the_accelerator() -> None:
    config = build_config(FACTS, ServingOptions(tensorrt_fp16=True))
    (accel,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accel.name == "tensorrt" and accel.parameters["precision_mode"] == "FP16"


@pytest.mark.parametrize(
    "options",
    [ServingOptions(), ServingOptions(tensorrt_fp16=True, max_batch_size=8, preferred_batch_sizes=(2, 4))],
)
def test_every_generated_config_round_trips(options: ServingOptions, tmp_path: Path) -> None:
    config = build_config(FACTS, options)
    text = to_text(config)
    assert "timeout_action: REJECT" in text  # printed although it is the proto default
    assert parse_text(text) == config
    assert text_format.Parse(text, mc.ModelConfig()) == config
    path = write_config(config, tmp_path / "config.pbtxt")
    assert read_config(path) == config


def test_written_repository_config_parses(exported: ExportResult) -> None:
    config = read_config(exported.model_dir / "config.pbtxt")
    assert config.name == "cats_dogs" and parameters(config)["triton_model_version"] == str(exported.version)


@pytest.mark.parametrize(
    "bad",
    [
        ("max_batch_size: 64", "max_batch_sise: 64"),  # misspelt field
        ("timeout_action: REJECT", "timeout_action: REJECTED"),  # unknown enum value
        ("kind: KIND_GPU", "kind: KIND_GPU\n  gpus_per_instance: 1"),  # unknown field
    ],
)
def test_misspelt_or_unknown_fields_fail_to_parse(bad: tuple[str, str], tmp_path: Path) -> None:
    text = to_text(build_config(FACTS))
    old, new = bad
    assert old in text
    with pytest.raises(ConfigError, match="not a valid Triton ModelConfig"):
        parse_text(text.replace(old, new, 1))
    path = tmp_path / "config.pbtxt"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError):
        read_config(path)


def test_invalid_options_are_refused() -> None:
    with pytest.raises(ValueError, match="preferred batch sizes"):
        ServingOptions(max_batch_size=8, preferred_batch_sizes=(16,))
