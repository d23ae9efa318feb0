"""What the served model expects, read from Triton itself, and a gRPC aio inference call."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from tritonlink import channel_args, parse_target


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    input_name: str
    image_size: int
    output_name: str
    max_batch_size: int
    class_names: tuple[str, ...]
    # Where the served version came from: the MLflow registered-model version (config parameters).
    mlflow_version: str | None = None


def parse_model_info(name: str, metadata: dict[str, Any], config: dict[str, Any]) -> ModelInfo:
    """Model facts from Triton's metadata and config (JSON forms), with errors that say what is missing."""
    inputs, outputs = metadata.get("inputs", []), metadata.get("outputs", [])
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"model {name!r}: expected one input and one output, got {inputs} / {outputs}")
    shape = [int(d) for d in inputs[0]["shape"]]
    if inputs[0]["datatype"] != "UINT8" or len(shape) != 4 or shape[-1] != 3 or shape[1] != shape[2]:
        raise ValueError(f"model {name!r}: input must be UINT8 [N,S,S,3], got {inputs[0]}")
    raw_names = config.get("parameters", {}).get("class_names", {}).get("string_value")
    if not raw_names:
        raise ValueError(f"model {name!r}: config parameters lack 'class_names' (re-export the model)")
    versions = metadata.get("versions") or ["unknown"]
    return ModelInfo(
        name=name,
        version=str(max(versions, key=lambda v: int(v) if str(v).isdigit() else -1)),
        input_name=inputs[0]["name"],
        image_size=shape[1],
        output_name=outputs[0]["name"],
        max_batch_size=int(config.get("max_batch_size", 0)),
        class_names=tuple(json.loads(raw_names)),
        mlflow_version=config.get("parameters", {}).get("model_version_mlflow", {}).get("string_value"),
    )


class TritonModel:
    """``url``: one Triton (host:port), several (comma-separated) or a gRPC target such as
    ``dns:///triton-headless:8001``: one channel, batches spread over the servers (round_robin)."""

    def __init__(self, url: str, model_name: str, *, timeout_s: float = 60.0) -> None:
        self.url = url
        self.model_name = model_name
        self.timeout_s = timeout_s
        self.target = parse_target(url)
        self.client = grpcclient.InferenceServerClient(self.target.target, channel_args=channel_args())
        self.info: ModelInfo | None = None

    async def connect(self) -> ModelInfo:
        try:
            ready = await self.client.is_model_ready(self.model_name)
        except InferenceServerException as exc:
            raise ConnectionError(f"cannot reach Triton at {self.url} over gRPC: {exc.message()}") from exc
        if not ready:
            raise ConnectionError(f"Triton at {self.url} is up but model {self.model_name!r} is not ready")
        metadata = await self.client.get_model_metadata(self.model_name, as_json=True)
        config = (await self.client.get_model_config(self.model_name, as_json=True))["config"]
        self.info = parse_model_info(self.model_name, metadata, config)
        return self.info

    async def infer(self, pixels: np.ndarray) -> tuple[np.ndarray, str]:
        """Probabilities for a uint8 batch and the model version that produced them."""
        assert self.info is not None, "call connect() first"
        request = grpcclient.InferInput(self.info.input_name, list(pixels.shape), "UINT8")
        request.set_data_from_numpy(pixels)
        result = await self.client.infer(
            self.model_name,
            [request],
            outputs=[grpcclient.InferRequestedOutput(self.info.output_name)],
            client_timeout=self.timeout_s,
        )
        probs = result.as_numpy(self.info.output_name)
        if probs is None:
            raise RuntimeError(f"Triton returned no {self.info.output_name!r} output")
        return probs, str(result.get_response().model_version or self.info.version)

    async def close(self) -> None:
        await self.client.close()
