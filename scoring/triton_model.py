"""What the served model expects, read from Triton itself (``contract.model_info``), and a gRPC aio
inference call."""

from __future__ import annotations

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from contract.model_info import ModelInfo, parse_model_info
from tritonlink import channel_args, parse_target


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
