"""The gateway (both protocols) and bulk scoring read the real Triton's model through the one
contract.model_info, and what they read is what export wrote into the repository."""

from __future__ import annotations

import json

import pytest

from contract.model import CLASS_NAMES_PARAMETER, CONFIG_FILENAME, INPUT_NAME, MODEL_NAME, OUTPUT_NAME
from gateway.triton_backend import TritonBackend
from scoring.triton_model import TritonModel
from tests.support.triton import TritonFixture

pytestmark = [pytest.mark.triton, pytest.mark.slow]


async def test_every_client_reads_the_same_model_from_triton(triton: TritonFixture) -> None:
    readings = []
    for protocol, url in (("grpc", triton.grpc_url), ("http", triton.http_url)):
        backend = TritonBackend(url, protocol, MODEL_NAME)  # type: ignore[arg-type]
        try:
            readings.append(await backend.model_info())
        finally:
            await backend.close()
    scorer = TritonModel(triton.grpc_url, MODEL_NAME)
    try:
        readings.append(await scorer.connect())
    finally:
        await scorer.close()

    assert readings[0] == readings[1] == readings[2]
    info = readings[0]
    assert (info.name, info.input_name, info.output_name, info.input_datatype) == (
        MODEL_NAME,
        INPUT_NAME,
        OUTPUT_NAME,
        "UINT8",
    )
    config = (triton.repository / MODEL_NAME / CONFIG_FILENAME).read_text()
    assert f"max_batch_size: {info.max_batch_size}\n" in config and info.batching
    assert f"dims: {info.image_size}\n" in config
    assert list(info.class_names) == json.loads(info.parameters[CLASS_NAMES_PARAMETER])
    assert info.version == max(info.versions, key=int)
