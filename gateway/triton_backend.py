"""Triton through tritonclient's asyncio clients (gRPC by default, HTTP as an option).

Everything the gateway knows about the model comes from here: input name/shape/dtype, max batch
size, class names and version are read from Triton's model metadata and config ``parameters``
(``contract.model_info`` says what a servable model is).
Triton's failures are folded into a few kinds that map onto HTTP statuses.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Literal

import numpy as np
from tritonclient.utils import InferenceServerException

from contract.model_info import ModelInfo, parse_model_info, version_order
from tritonlink import TritonTarget, channel_args, parse_target

TritonFailure = Literal["unavailable", "rejected", "timeout", "model_error"]

# Triton's words when the dynamic batcher refuses a request (queue full, or queue timeout with REJECT).
_REJECTED_MARKERS = ("exceeds maximum queue size", "request timeout expired", "rejected")
_UNAVAILABLE_MARKERS = (
    "failed to connect",
    "connection refused",
    "unknown model",
    "not ready",
    "is not found",
    # Triton shutting down: the python backend's stub is stopped under requests still queued.
    "stub process",
    "is not healthy",
    "shutting down",
    "socket closed",
    "connection reset",
    "rst_stream",
)


# Tries per call when the channel spans several servers: with two, the chance that three picks in a
# row all land on the one going away is small, and each try is bounded by the request's deadline.
_REPLICA_ATTEMPTS = 3


class TritonError(Exception):
    """A Triton call that failed; ``kind`` decides the HTTP status, ``detail`` is safe to show."""

    def __init__(self, kind: TritonFailure, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def classify_exception(exc: BaseException) -> TritonError:
    """Any client-side exception → a TritonError with a kind and a message without internals."""
    if isinstance(exc, TritonError):
        return exc
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return TritonError("timeout", "Triton did not answer in time")
    if isinstance(exc, InferenceServerException):
        status = str(exc.status() or "").upper()
        message = str(exc.message() or "").lower()
        if "DEADLINE_EXCEEDED" in status or "deadline exceeded" in message:
            return TritonError("timeout", "Triton did not answer in time")
        if any(marker in message for marker in _REJECTED_MARKERS):
            return TritonError("rejected", "the inference queue is full")
        if (
            "UNAVAILABLE" in status
            or "NOT_FOUND" in status
            # Triton's gRPC server cancels the calls still in flight when it shuts down: the rare 502
            # while Triton stopped under load (1 run in 8 of tests/hardening, 12 calls). The gateway's
            # own cancellations never get here (asyncio.CancelledError is re-raised before).
            or "CANCELLED" in status
            or any(m in message for m in _UNAVAILABLE_MARKERS)
        ):
            return TritonError("unavailable", "the model server is not available")
        return TritonError("model_error", "the model server failed to run the model")
    # aiohttp/grpc connection errors and the like: the server is not reachable.
    return TritonError("unavailable", "the model server is not available")


class TritonBackend:
    """One long-lived asyncio client; the underlying channel reconnects by itself after a restart.

    Over gRPC the channel may span several Triton servers (``tritonlink``: a list or a
    ``dns:///`` target, balanced per request). Every ``max_connection_age_s`` a new channel
    replaces it, so DNS is read again and new replicas join; the old one is closed only after
    ``retire_after_s``, when every request it carried has finished or hit its deadline.
    """

    def __init__(
        self,
        url: str,
        protocol: Literal["grpc", "http"],
        model_name: str,
        *,
        max_connection_age_s: float | None = None,
        retire_after_s: float = 30.0,
    ) -> None:
        self.url = url
        self.protocol = protocol
        self.model_name = model_name
        self.max_connection_age_s = max_connection_age_s
        self.retire_after_s = retire_after_s
        self.last_success = 0.0  # monotonic time Triton last answered an inference (results or queue full)
        self._client: Any
        self.target: TritonTarget | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        if protocol == "grpc":
            import tritonclient.grpc.aio as grpcclient

            self._module: Any = grpcclient
            self.target = parse_target(url)
        else:
            import tritonclient.http.aio as httpclient

            self._module = httpclient
        self._client = self._new_client()
        self._born = time.monotonic()
        self.retries = 0  # inferences retried after an "unavailable" answer (several servers)

    @property
    def replicated(self) -> bool:
        """True when the channel may reach several Triton servers (a list or a DNS name)."""
        if self.target is None:
            return False
        return len(self.target.endpoints) > 1 or self.target.target.startswith("dns:")

    def _new_client(self) -> Any:
        if self.target is not None:
            return self._module.InferenceServerClient(self.target.target, channel_args=channel_args())
        return self._module.InferenceServerClient(self.url)

    @property
    def client(self) -> Any:
        """The current client, renewed once it is older than ``max_connection_age_s`` (gRPC only)."""
        age = self.max_connection_age_s
        if self.protocol == "grpc" and age is not None and time.monotonic() - self._born > age:
            old, self._client, self._born = self._client, self._new_client(), time.monotonic()
            task = asyncio.get_running_loop().create_task(self._retire(old))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        return self._client

    async def _retire(self, client: Any) -> None:
        try:
            await asyncio.sleep(self.retire_after_s)
        finally:
            await client.close()

    async def close(self) -> None:
        for task in list(self._retiring):
            task.cancel()  # closes its client at once (the finally above)
        await asyncio.gather(*self._retiring, return_exceptions=True)
        await self._client.close()

    @property
    def attempts(self) -> int:
        """Calls per question: one server, once; several, up to 3 (each call may reach another one)."""
        return _REPLICA_ATTEMPTS if self.replicated else 1

    async def server_ready(self, timeout_s: float = 2.0) -> bool:
        # With several servers a call reaches one of them; the gateway can serve when any is ready
        # (a server that is shutting down answers "not ready" while its port is still open).
        for _ in range(self.attempts):
            try:
                async with asyncio.timeout(timeout_s):
                    if await self.client.is_server_ready():
                        return True
            except Exception:
                continue
        return False

    async def model_ready(self, timeout_s: float = 2.0) -> bool:
        for _ in range(self.attempts):
            try:
                async with asyncio.timeout(timeout_s):
                    if await self.client.is_model_ready(self.model_name):
                        return True
            except Exception:
                continue
        return False

    async def model_versions(self, timeout_s: float = 2.0) -> tuple[str, ...]:
        """Loaded versions, cheap enough to poll: a change means the metadata must be read again."""
        for attempt in range(self.attempts):
            try:
                async with asyncio.timeout(timeout_s):
                    metadata = await self._metadata()
                break
            except Exception as exc:
                error = classify_exception(exc)
                if error.kind != "unavailable" or attempt + 1 == self.attempts:
                    raise error from exc
        return version_order(metadata.get("versions") or [])

    async def _metadata(self) -> dict[str, Any]:
        if self.protocol == "grpc":
            result: dict[str, Any] = await self.client.get_model_metadata(self.model_name, as_json=True)
        else:
            result = await self.client.get_model_metadata(self.model_name)
        return result

    async def _config(self) -> dict[str, Any]:
        if self.protocol == "grpc":
            response = await self.client.get_model_config(self.model_name, as_json=True)
            config: dict[str, Any] = response.get("config", {})
        else:
            config = await self.client.get_model_config(self.model_name)
        return config

    async def model_info(self, timeout_s: float = 5.0) -> ModelInfo:
        for attempt in range(self.attempts):
            try:
                async with asyncio.timeout(timeout_s):
                    metadata = await self._metadata()
                    config = await self._config()
                break
            except Exception as exc:
                error = classify_exception(exc)
                if error.kind != "unavailable" or attempt + 1 == self.attempts:
                    raise error from exc
        return parse_model_info(self.model_name, _jsonable(metadata), _jsonable(config))

    async def infer(self, images: np.ndarray, info: ModelInfo, timeout_s: float) -> tuple[np.ndarray, str]:
        """``images`` uint8 [N,S,S,3] → (probabilities [N,C], the version that answered). Binary tensors."""
        module = self._module
        infer_input = module.InferInput(info.input_name, list(images.shape), info.input_datatype)
        requested: Any
        if self.protocol == "grpc":
            infer_input.set_data_from_numpy(images)
            requested = module.InferRequestedOutput(info.output_name)
            kwargs: dict[str, Any] = {"client_timeout": timeout_s}
        else:
            infer_input.set_data_from_numpy(images, binary_data=True)
            requested = module.InferRequestedOutput(info.output_name, binary_data=True)
            kwargs = {"timeout": int(timeout_s * 1_000_000)}  # Triton's own queue/compute timeout, in µs
        # With several servers behind the channel, one that is going away (stopped, restarted,
        # rescheduled) answers "unavailable" while its port is still open (Triton unloads its
        # models before it closes the port); inference has no side effect, so it is tried again,
        # within the same deadline: round_robin sends each try to the next server.
        attempts = self.attempts
        deadline = time.monotonic() + timeout_s
        for attempt in range(attempts):
            try:
                async with asyncio.timeout(timeout_s):
                    result = await self.client.infer(
                        self.model_name, [infer_input], outputs=[requested], **kwargs
                    )
                break
            except asyncio.CancelledError:
                raise  # the client went away: let the cancellation reach the RPC
            except Exception as exc:
                error = classify_exception(exc)
                if error.kind == "rejected":
                    # "Queue full" is an answer: Triton is alive and busy, so an overloaded server
                    # must not look frozen (gateway/model_state.py: unresponsive).
                    self.last_success = time.monotonic()
                remaining = deadline - time.monotonic()
                if error.kind != "unavailable" or attempt + 1 == attempts or remaining < 0.05:
                    raise error from exc
                self.retries += 1
                timeout_s = remaining
                if self.protocol == "grpc":
                    kwargs["client_timeout"] = remaining
        self.last_success = time.monotonic()
        probabilities = result.as_numpy(info.output_name)
        if probabilities is None or probabilities.shape[0] != images.shape[0]:
            raise TritonError("model_error", "the model returned an unexpected output")
        response = result.get_response(as_json=True) if self.protocol == "grpc" else result.get_response()
        version = str(response.get("model_version") or info.version)
        return probabilities.astype(np.float32, copy=False), version


def _jsonable(value: Any) -> dict[str, Any]:
    # gRPC's as_json output already is a dict; a round trip normalises both protocols' shapes.
    result: dict[str, Any] = json.loads(json.dumps(value, default=str))
    return result
