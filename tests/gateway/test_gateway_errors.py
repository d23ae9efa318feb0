"""Error mapping: decode failures → 400/413/415/422, Triton failures → 503/429/504, JSON only."""

from __future__ import annotations

import asyncio
import io
import threading
from typing import Any

import numpy as np
import pytest
from PIL import Image
from tritonclient.utils import InferenceServerException

from gateway.admission import ClientGoneError, admitted, unless_disconnected
from gateway.decoding import Decoder
from gateway.errors import IMAGE_ERROR_STATUS, from_image_error, from_triton_error
from gateway.triton_backend import TritonError, classify_exception
from imaging import ImageError, load_for_model
from imaging.decode import DecodeLimits


def _jpeg(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 127, np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", 400),
        (b"x" * 5000, 413),  # over the 4 kB byte cap below
        (b"GIF87a" + b"\0" * 10, 422),  # right signature, broken header
        (b"hello world", 415),
        (_jpeg(640, 480)[:300], 422),  # truncated
        (_jpeg(300, 300), 413),  # 90 kpx > 50 kpx cap
    ],
)
def test_decode_failures_map_to_client_statuses(data: bytes, status: int) -> None:
    limits = DecodeLimits(max_bytes=4096 if len(data) == 5000 else 10**7, max_pixels=50_000)
    with pytest.raises(ImageError) as caught:
        load_for_model(data, 64, limits=limits)
    error = from_image_error(caught.value)
    assert error.status == status
    assert error.error == caught.value.kind


def test_every_image_error_kind_has_a_4xx() -> None:
    assert set(IMAGE_ERROR_STATUS.values()) <= {400, 413, 415, 422}
    assert {"empty", "too_large", "too_many_pixels", "unsupported_format", "corrupt"} <= set(
        IMAGE_ERROR_STATUS
    )


@pytest.mark.parametrize(
    ("status", "message", "kind", "http"),
    [
        ("StatusCode.UNAVAILABLE", "failed to connect to all addresses", "unavailable", 503),
        ("StatusCode.UNAVAILABLE", "Exceeds maximum queue size", "rejected", 429),
        ("StatusCode.UNAVAILABLE", "Request timeout expired", "rejected", 429),
        ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", "timeout", 504),
        ("StatusCode.NOT_FOUND", "Request for unknown model: 'cats_dogs' is not found", "unavailable", 503),
        ("StatusCode.INTERNAL", "onnxruntime failed: boom at /secret/path.py", "model_error", 502),
    ],
)
def test_triton_failures_map_to_statuses(status: str, message: str, kind: str, http: int) -> None:
    error = classify_exception(InferenceServerException(msg=message, status=status))
    assert error.kind == kind
    api = from_triton_error(error, retry_after_s=3)
    assert api.status == http
    assert ("Retry-After" in api.headers) == (http in (429, 503))
    assert "/secret" not in api.detail  # server internals never reach the client


def test_connection_errors_and_timeouts_are_classified() -> None:
    assert classify_exception(ConnectionRefusedError()).kind == "unavailable"
    assert classify_exception(TimeoutError()).kind == "timeout"
    assert classify_exception(TritonError("rejected", "x")).kind == "rejected"


class _Services:
    """Just the fields ``admitted`` touches."""

    def __init__(self, limit: int) -> None:
        from gateway.metrics import Metrics
        from gateway.settings import Settings

        self.settings = Settings(max_in_flight=limit)
        self.metrics = Metrics()
        self.in_flight = 0
        self.model = _Model()


class _Model:
    """A served model that is ready, or (``ready=False``) one whose Triton stopped answering."""

    def __init__(self) -> None:
        self.ready, self.unresponsive, self.probes = True, False, 0
        self.silent = False  # Triton answered (results or "queue full") within the last seconds
        self.last = type("Readiness", (), {"reason": "ready"})()

    def request_check(self) -> None:
        self.probes += 1


async def test_in_flight_limit_refuses_with_429_and_releases() -> None:
    services: Any = _Services(limit=1)
    async with admitted(services):
        with pytest.raises(Exception) as caught:
            async with admitted(services):
                pass
        assert caught.value.status == 429  # type: ignore[attr-defined]
        assert caught.value.headers["Retry-After"] == "1"  # type: ignore[attr-defined]
    assert services.in_flight == 0
    async with admitted(services):
        assert services.in_flight == 1


async def test_slots_held_for_an_unready_model_are_503_not_overload() -> None:
    """A frozen Triton holds every slot: that is the model being unavailable, not the gateway overloaded."""
    services: Any = _Services(limit=1)
    async with admitted(services):
        services.model.ready = False
        with pytest.raises(Exception) as caught:
            async with admitted(services):
                pass
        assert caught.value.status == 503 and caught.value.error == "model_unavailable"  # type: ignore[attr-defined]
    services.model.ready = True
    async with admitted(services):
        services.model.silent = True  # every slot held, nothing answered lately: frozen, not busy
        with pytest.raises(Exception) as caught:
            async with admitted(services):
                pass
        assert caught.value.status == 503 and services.model.probes == 1  # type: ignore[attr-defined]
    services.model.silent = False
    services.model.unresponsive = True  # a probe found Triton not answering: fail fast, probe again
    with pytest.raises(Exception) as caught:
        async with admitted(services):
            pass
    assert caught.value.status == 503 and services.model.probes == 2  # type: ignore[attr-defined]


class _Request:
    """A request whose client leaves after ``delay`` seconds (what uvicorn's receive() reports)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def receive(self) -> dict[str, str]:
        await asyncio.sleep(self.delay)
        return {"type": "http.disconnect"}


async def test_a_client_that_leaves_cancels_the_work() -> None:
    cancelled = asyncio.Event()

    async def slow_inference() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "done"

    with pytest.raises(ClientGoneError):
        await unless_disconnected(_Request(0.05), slow_inference())  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert cancelled.is_set()


async def test_work_that_finishes_first_is_returned() -> None:
    async def fast() -> str:
        return "label"

    assert await unless_disconnected(_Request(10), fast()) == "label"  # type: ignore[arg-type]


async def test_decoding_runs_off_the_event_loop() -> None:
    decoder = Decoder(threads=2, max_bytes=10**7, max_pixels=10**8)
    seen: list[str] = []
    original = decoder._decode

    def spy(data: bytes, size: int, sha256: str | None):  # type: ignore[no-untyped-def]
        seen.append(threading.current_thread().name)
        return original(data, size, sha256)

    decoder._decode = spy  # type: ignore[method-assign]
    try:
        result = await decoder.decode(_jpeg(400, 300), 32)
    finally:
        decoder.close()
    assert result.image.shape == (32, 32, 3) and result.image.dtype == np.uint8
    assert len(result.sha256) == 64
    assert seen and seen[0].startswith("decode") and seen[0] != threading.main_thread().name
