"""contract.model_info: the one reading of Triton's metadata and config that the gateway, bulk scoring
and the benchmarks share, with an error that says what to do for every model none of them could use."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contract.model_info import ModelInfo, parse_model_info, version_order


def metadata(**changes: Any) -> dict[str, Any]:
    # The gRPC JSON form: int64 dims and versions arrive as strings.
    base: dict[str, Any] = {
        "name": "cats_dogs",
        "versions": ["1", "2"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "image", "datatype": "UINT8", "shape": ["-1", "64", "64", "3"]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": ["-1", "2"]}],
    }
    return base | changes


def config(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "cats_dogs",
        "max_batch_size": 64,
        "parameters": {
            "class_names": {"string_value": '["cat", "dog"]'},
            "image_size": {"string_value": "64"},
            "model_version_mlflow": {"string_value": "5"},
        },
    }
    return base | changes


def parameters(**values: str) -> dict[str, dict[str, str]]:
    return {key: {"string_value": value} for key, value in values.items()}


def test_a_servable_model_is_described_as_the_gateway_describes_it() -> None:
    info = parse_model_info("cats_dogs", metadata(), config())
    # GET /model's body, byte for byte: clients parse it, so its keys, order and values are an interface.
    assert json.dumps(info.as_dict()) == (
        '{"name": "cats_dogs", "version": "2", "input": {"name": "image", "datatype": "UINT8", '
        '"shape": [-1, 64, 64, 3]}, "output": "probabilities", "max_batch_size": 64, '
        '"class_names": ["cat", "dog"], "parameters": {"class_names": "[\\"cat\\", \\"dog\\"]", '
        '"image_size": "64", "model_version_mlflow": "5"}}'
    )
    assert info.versions == ("1", "2") and info.batching
    assert info.mlflow_version == "5"


def test_the_http_json_form_reads_the_same() -> None:
    http_metadata = metadata(
        versions=["1", "2"],
        inputs=[{"name": "image", "datatype": "UINT8", "shape": [-1, 64, 64, 3]}],
    )
    assert parse_model_info("m", http_metadata, config()) == parse_model_info("m", metadata(), config())


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"inputs": []}, "one input and one output, has 0/1"),
        ({"outputs": [{"name": "a"}, {"name": "b"}]}, "one input and one output, has 1/2"),
        # The gateway used to accept any datatype and fail at the first inference instead.
        ({"inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 64, 64, 3]}]}, "FP32"),
        ({"inputs": [{"name": "image", "datatype": "UINT8", "shape": [-1, 3, 64, 64]}]}, "NHWC"),
        ({"inputs": [{"name": "image", "datatype": "UINT8", "shape": [64, 64, 3]}]}, "[N,S,S,3]"),
        # Scoring used to require square, the gateway took the height: now both refuse.
        ({"inputs": [{"name": "image", "datatype": "UINT8", "shape": [-1, 64, 32, 3]}]}, "square"),
        # Scoring used to call such a model version "unknown"; no ready model has no version.
        ({"versions": []}, "no loaded version"),
    ],
)
def test_a_model_no_client_could_use_is_refused_with_what_to_do(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match="cats_dogs") as error:
        parse_model_info("cats_dogs", metadata(**changes), config())
    assert words in str(error.value)
    if "version" not in words:
        assert "re-export it with `python -m export`" in str(error.value)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        (parameters(image_size="64"), "no 'class_names' parameter"),
        (parameters(class_names="cat,dog"), "must be a JSON list"),
        (parameters(class_names="[]"), "must be a JSON list"),
        (parameters(class_names='{"0": "cat"}'), "must be a JSON list"),
    ],
)
def test_class_names_must_be_a_json_list_in_the_config(params: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match="re-export") as error:
        parse_model_info("m", metadata(), config(parameters=params))
    assert words in str(error.value)


def test_an_open_spatial_size_comes_from_the_image_size_parameter() -> None:
    dynamic = metadata(inputs=[{"name": "image", "datatype": "UINT8", "shape": ["-1", "-1", "-1", "3"]}])
    assert parse_model_info("m", dynamic, config()).image_size == 64
    for bad in ({}, {"image_size": "large"}, {"image_size": "0"}):
        params = parameters(class_names='["cat", "dog"]', **bad)
        with pytest.raises(ValueError, match="no fixed image size and no 'image_size' parameter"):
            parse_model_info("m", dynamic, config(parameters=params))
    half_open = metadata(inputs=[{"name": "image", "datatype": "UINT8", "shape": [-1, 48, -1, 3]}])
    assert parse_model_info("m", half_open, config()).image_size == 48


def test_the_highest_loaded_version_answers_in_numeric_order() -> None:
    info = parse_model_info("m", metadata(versions=["9", "10", "2"]), config())
    assert info.version == "10"  # not "9", the highest as a string
    assert info.versions == ("2", "9", "10")
    assert version_order([3, "1", "x"]) == ("x", "1", "3")


def test_a_model_triton_does_not_batch_takes_one_image_a_request() -> None:
    # gRPC's JSON leaves a 0 max_batch_size out. Scoring used to read 0 (and send its own batch
    # size), the gateway 1: both now read 1, and ``batching`` keeps Triton's distinction.
    unbatched = config()
    del unbatched["max_batch_size"]
    for cfg in (unbatched, config(max_batch_size=0)):
        info = parse_model_info("m", metadata(), cfg)
        assert (info.max_batch_size, info.batching) == (1, False)
        assert info.as_dict()["max_batch_size"] == 1
    info = parse_model_info("m", metadata(), config(max_batch_size=8))
    assert (info.max_batch_size, info.batching) == (8, True)


def test_mlflow_version_is_none_when_the_export_did_not_know_it() -> None:
    params = parameters(class_names='["cat", "dog"]', model_version_mlflow="")
    assert parse_model_info("m", metadata(), config(parameters=params)).mlflow_version is None
    params = parameters(class_names='["cat", "dog"]')
    info = parse_model_info("m", metadata(), config(parameters=params))
    assert info.mlflow_version is None and info.parameters == {"class_names": '["cat", "dog"]'}


def test_model_info_needs_keywords() -> None:
    # kw_only: a field added later cannot silently shift a positional construction.
    with pytest.raises(TypeError):
        ModelInfo("m", "1", ("1",), "image", 4, "p", 8, ("cat", "dog"))  # type: ignore[misc]
