"""Serving predictions: what /predict and /predict/batch do once FastAPI has parsed the upload(s).

The deadline, decode → infer (within the admission limits and disconnect handling of gateway/admission.py),
the response cache, the prediction log and the one ``prediction_completed`` line per photo are each
written once here; the routes (gateway/predict.py) only hand over the request and its files. The
answers are built by hand and sent as ``JSONResponse``: their bytes are pinned by
tests/gateway/test_gateway_golden.py, and gateway/schemas.py only describes them.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import numpy as np
import structlog
from fastapi import Depends, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from contract.model import UNCERTAIN_THRESHOLD_PARAMETER
from contract.model_info import ModelInfo
from gateway.admission import (
    ClientGoneError,
    admitted,
    batch_admitted,
    model_unavailable,
    require_model,
    retry_later,
    unless_disconnected,
)
from gateway.decoding import DecodeBusyError, DecodedUpload
from gateway.dependencies import Services
from gateway.errors import ApiError, from_image_error, from_triton_error
from gateway.triton_backend import TritonError
from imaging import ImageError

# The routes' logger name, kept: log queries and dashboards select on it.
log = structlog.get_logger("gateway.predict")
T = TypeVar("T")

# Status for a request whose client left before the answer (nginx's convention; nobody reads it).
CLIENT_CLOSED = 499

# Used when neither UNCERTAIN_THRESHOLD nor the served model says: models exported before calibration.
FALLBACK_UNCERTAIN_THRESHOLD = 0.6


# ----------------------------------------------------------------------------------------- the answer


def uncertain_threshold(setting: float | None, info: ModelInfo) -> float:
    """UNCERTAIN_THRESHOLD when set, else the model's own (from its config), else the fallback."""
    if setting is not None:
        return setting
    try:
        return float(info.parameters.get(UNCERTAIN_THRESHOLD_PARAMETER, FALLBACK_UNCERTAIN_THRESHOLD))
    except (TypeError, ValueError):
        return FALLBACK_UNCERTAIN_THRESHOLD


def prediction_body(row: np.ndarray, info: ModelInfo, threshold: float) -> dict[str, Any]:
    index = int(np.argmax(row))
    confidence = float(row[index])
    return {
        "predicted_class": info.class_names[index],
        "predicted_label": index,
        "confidence": confidence,
        "probabilities": {name: float(p) for name, p in zip(info.class_names, row, strict=True)},
        "uncertain": confidence < threshold,
    }


def _without_ids(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("request_id", "client_request_id")}


@dataclass(frozen=True)
class Call:
    """One /predict or /predict/batch request: its ids and when it started."""

    request: Request
    # Always generated here: it keys the prediction log and /feedback, so a client must not choose
    # it (a reused id lost its row and sent feedback to another image).
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    client_request_id: str | None = None
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def of(cls, request: Request) -> Call:
        # The caller's X-Request-ID is kept only to correlate logs and answers; short and printable
        # only, so it cannot pollute the logs.
        given = request.headers.get("x-request-id", "")
        valid = bool(given) and len(given) <= 64 and given.isprintable()
        return cls(request, client_request_id=given if valid else None)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def with_ids(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` with the request's ids last, the client's only when it sent one."""
        body["request_id"] = self.request_id
        if self.client_request_id is not None:
            body["client_request_id"] = self.client_request_id
        return body

    def headers(self) -> dict[str, str]:
        headers = {"X-Request-ID": self.request_id}
        if self.client_request_id is not None:
            headers["X-Client-Request-ID"] = self.client_request_id
        return headers


class PredictionService:
    """The photo(s) of one request → its answer, under the gateway's limits; see the module docstring."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def predict(self, request: Request, file: UploadFile | None) -> Response:
        """POST /predict: one photo in field ``file``."""
        call = Call.of(request)
        return await self._answered(call, lambda: self._predict(call, file))

    async def predict_batch(self, request: Request, files: list[UploadFile] | None) -> Response:
        """POST /predict/batch: photos in the repeated field ``files``, each answered on its own."""
        call = Call.of(request)
        return await self._answered(call, lambda: self._predict_batch(call, files))

    # ------------------------------------------------------------------------------- one photo

    async def _predict(self, call: Call, file: UploadFile | None) -> Response:
        services = self.services
        if file is None:
            raise ApiError(422, "missing_file", "send the photo as multipart/form-data field 'file'")
        # FastAPI would silently keep the last of several `file` parts: refuse the ambiguity instead.
        if len((await call.request.form()).getlist("file")) > 1:
            raise ApiError(422, "multiple_files", "send one photo in field 'file'; /predict/batch takes many")
        async with admitted(services):
            data = await self._read(file)
            info = require_model(services)
            sha256 = hashlib.sha256(data).hexdigest()
            cached, cache_state = self._cache_lookup(call.request, sha256, info)
            if cached is not None:
                return await self._answer_from_cache(call, cached, sha256, len(data))

            async def decode_and_infer(deadline: float) -> tuple[DecodedUpload, np.ndarray, str]:
                decoded = await self._decode(data, info.image_size, sha256)
                probabilities, version = await self._infer(decoded.image[np.newaxis], info, deadline)
                return decoded, probabilities, version

            decoded, probabilities, version = await self._within_deadline(call, decode_and_infer)

        elapsed = call.elapsed()
        body = prediction_body(probabilities[0], info, self._threshold(info))
        body |= {"processing_time_ms": round(elapsed * 1000, 2), "model_version": version}
        call.with_ids(body)
        self._completed(call, body, elapsed, version, sha256, image_bytes=len(data))
        self._observe_total(elapsed)
        tracking = services.tracking
        if tracking is not None:
            await self._track(info, decoded, body)
            if cache_state == "miss" and str(version) == info.version:
                tracking.cache.put(sha256, info.version, _without_ids(body))
        headers = call.headers()
        if cache_state:
            headers["X-Cache"] = cache_state
        return JSONResponse(body, headers=headers)

    def _cache_lookup(
        self, request: Request, sha256: str, info: ModelInfo
    ) -> tuple[dict[str, Any] | None, str | None]:
        """(cached body or None, "hit" | "miss" | "bypass" | None when there is no cache)."""
        tracking = self.services.tracking
        if tracking is None or not tracking.cache.enabled:
            return None, None
        if not self.services.model.ready:
            # A cached answer would hide an outage: while Triton is down, clients get the 503.
            return None, "bypass"
        no_cache = "no-cache" in request.headers.get("cache-control", "").lower()
        if no_cache or request.headers.get("x-cache-bypass", "").lower() in ("1", "true", "yes"):
            tracking.metrics.cache.labels(result="bypass").inc()
            return None, "bypass"
        cached = tracking.cache.get(sha256, info.version)
        tracking.metrics.cache.labels(result="hit" if cached else "miss").inc()
        return cached, "hit" if cached else "miss"

    async def _answer_from_cache(
        self, call: Call, cached: dict[str, Any], sha256: str, size: int
    ) -> JSONResponse:
        """Same photo, same model, within the TTL: the earlier answer, as a new logged prediction."""
        elapsed = call.elapsed()
        # The cached body keeps its key order: processing_time_ms is replaced where it stands.
        body = call.with_ids(cached | {"processing_time_ms": round(elapsed * 1000, 2)})
        self._completed(call, body, elapsed, body["model_version"], sha256, image_bytes=size, cache="hit")
        self._observe_total(elapsed)
        assert self.services.tracking is not None
        await self.services.tracking.record(body, sha256=sha256, size=size, light=None)
        return JSONResponse(body, headers=call.headers() | {"X-Cache": "hit"})

    # ----------------------------------------------------------------------------------- a batch

    async def _predict_batch(self, call: Call, files: list[UploadFile] | None) -> Response:
        services = self.services
        if not files:
            raise ApiError(422, "missing_file", "send the photos as repeated multipart field 'files'")
        info = require_model(services)
        if len(files) > info.max_batch_size:
            raise ApiError(
                413,
                "too_many_files",
                f"{len(files)} files exceeds the model's batch limit of {info.max_batch_size}",
            )
        async with admitted(services), batch_admitted(services):
            # At most decode-threads files of one batch in memory at once (read → decode → drop bytes).
            reading = asyncio.Semaphore(services.settings.decode_threads)

            async def decode_and_infer(
                deadline: float,
            ) -> tuple[list[DecodedUpload | ApiError], list[int], np.ndarray, str]:
                items = list(await asyncio.gather(*(self._batch_item(f, info, reading) for f in files)))
                good = [i for i, item in enumerate(items) if isinstance(item, DecodedUpload)]
                if not good:
                    return items, good, np.empty((0, len(info.class_names)), dtype=np.float32), info.version
                stacked = np.stack([items[i].image for i in good])  # type: ignore[union-attr]
                probabilities, version = await self._infer(stacked, info, deadline)
                return items, good, probabilities, version

            items, good, probabilities, version = await self._within_deadline(call, decode_and_infer)

        elapsed = call.elapsed()
        rows = dict(zip(good, probabilities, strict=True))
        results: list[dict[str, Any]] = []
        for index, (upload, item) in enumerate(zip(files, items, strict=True)):
            entry: dict[str, Any] = {"index": index, "filename": upload.filename}
            if isinstance(item, ApiError):
                entry |= {"error": item.error, "detail": item.detail, "status": item.status}
                services.metrics.errors.labels(error_type=item.error).inc()
            else:
                entry |= prediction_body(rows[index], info, self._threshold(info))
                self._completed(call, entry, elapsed, version, item.sha256, batch_index=index)
                if services.tracking is not None:
                    # Each photo is its own logged prediction, so feedback can name it.
                    entry["request_id"] = f"{call.request_id}-{index}"
                    logged = {
                        "processing_time_ms": round(elapsed * 1000, 2),
                        "model_version": version,
                        "client_request_id": call.client_request_id,
                    }
                    await self._track(info, item, entry | logged)
            results.append(entry)
        self._observe_total(elapsed)
        body = {
            "results": results,
            "model_version": version,
            "request_id": call.request_id,
            "processing_time_ms": round(elapsed * 1000, 2),
        }
        if call.client_request_id is not None:
            body["client_request_id"] = call.client_request_id
        return JSONResponse(body, headers=call.headers())

    async def _batch_item(
        self, upload: UploadFile, info: ModelInfo, reading: asyncio.Semaphore
    ) -> DecodedUpload | ApiError:
        """A bad file fails only its own item."""
        try:
            async with reading:
                data = await self._read(upload)
                return await self._decode(data, info.image_size)
        except ApiError as exc:
            return exc

    # ---------------------------------------------------------------------- steps of both routes

    async def _answered(self, call: Call, serve: Callable[[], Awaitable[Response]]) -> Response:
        """``serve``'s answer; a refusal is counted and logged, a client that left gets a 499."""
        try:
            return await serve()
        except ApiError as exc:
            self.services.metrics.errors.labels(error_type=exc.error).inc()
            log.info(
                "prediction_failed",
                request_id=call.request_id,
                client_request_id=call.client_request_id,
                error=exc.error,
                status=exc.status,
            )
            raise
        except ClientGoneError:
            self.services.metrics.errors.labels(error_type="client_disconnected").inc()
            log.info("prediction_cancelled", request_id=call.request_id, reason="client disconnected")
            return Response(status_code=CLIENT_CLOSED)

    async def _within_deadline(self, call: Call, work: Callable[[float], Awaitable[T]]) -> T:
        """``work(deadline)`` within REQUEST_TIMEOUT_S, stopped if the client leaves: no Triton call
        after its decode, or the in-flight gRPC call is cancelled."""
        timeout_s = self.services.settings.request_timeout_s
        deadline = time.monotonic() + timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                return await unless_disconnected(call.request, work(deadline))
        except TimeoutError as exc:
            raise self._timed_out() from exc

    def _timed_out(self) -> ApiError:
        """The deadline passed. If a probe has meanwhile found Triton unresponsive it is a 503, not a 504."""
        services = self.services
        services.model.request_check()
        if services.model.unresponsive:
            return model_unavailable(services, services.model.last.reason)
        return ApiError(504, "timeout", f"no answer within {services.settings.request_timeout_s:g} s")

    async def _read(self, upload: UploadFile) -> bytes:
        max_bytes = self.services.settings.max_upload_bytes
        # One byte past the cap is enough to know it is too large without holding the rest.
        data = await upload.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ApiError(413, "too_large", f"the file exceeds the limit of {max_bytes} bytes")
        self.services.metrics.input_bytes.observe(len(data))
        return data

    async def _decode(self, data: bytes, size: int, sha256: str | None = None) -> DecodedUpload:
        services = self.services
        started = time.perf_counter()
        try:
            decoded = await services.decoder.decode(data, size, sha256)
        except ImageError as exc:
            raise from_image_error(exc) from exc
        except DecodeBusyError as exc:
            raise retry_later(
                services,
                503,
                "decode_busy",
                "too many large or progressive photos are being decoded; retry shortly",
            ) from exc
        services.metrics.stage.labels(stage="decode").observe(time.perf_counter() - started)
        return decoded

    async def _infer(self, images: np.ndarray, info: ModelInfo, deadline: float) -> tuple[np.ndarray, str]:
        services = self.services
        remaining = max(deadline - time.monotonic(), 0.001)
        started = time.perf_counter()
        try:
            probabilities, version = await services.backend.infer(images, info, timeout_s=remaining)
        except TritonError as exc:
            if exc.kind == "unavailable":
                services.model.mark_unavailable(exc.detail)
            elif exc.kind == "timeout":
                services.model.request_check()  # a frozen Triton looks like this first
            raise from_triton_error(exc, services.settings.retry_after_s) from exc
        services.metrics.stage.labels(stage="infer").observe(time.perf_counter() - started)
        return probabilities, version

    def _threshold(self, info: ModelInfo) -> float:
        return uncertain_threshold(self.services.settings.uncertain_threshold, info)

    def _completed(
        self,
        call: Call,
        answer: dict[str, Any],
        elapsed: float,
        version: str,
        sha256: str,
        *,
        image_bytes: int | None = None,
        batch_index: int | None = None,
        cache: str | None = None,
    ) -> None:
        """Metrics and the ``prediction_completed`` log line of one classified photo (never its bytes)."""
        metrics = self.services.metrics
        metrics.requests.labels(predicted_class=answer["predicted_class"]).inc()
        metrics.confidence.observe(answer["confidence"])
        fields: dict[str, Any] = {
            "request_id": call.request_id,
            "client_request_id": call.client_request_id,
        }
        if batch_index is not None:
            fields["batch_index"] = batch_index
        fields |= {
            "predicted_class": answer["predicted_class"],
            "confidence": round(answer["confidence"], 4),
            "uncertain": answer["uncertain"],
            "processing_time_ms": round(elapsed * 1000, 2),
            "model_version": version,
            "image_sha256": sha256[:16],
        }
        if image_bytes is not None:
            fields["image_bytes"] = image_bytes
        if cache is not None:
            fields["cache"] = cache
        log.info("prediction_completed", **fields)

    def _observe_total(self, elapsed: float) -> None:
        """The request's latency (a batch is one request)."""
        self.services.metrics.latency.observe(elapsed)
        self.services.metrics.stage.labels(stage="total").observe(elapsed)

    async def _track(self, info: ModelInfo, decoded: DecodedUpload, logged: dict[str, Any]) -> None:
        """Log one classified photo in the prediction log and feed drift with its brightness."""
        tracking = self.services.tracking
        assert tracking is not None
        tracking.follow_model(info.class_names, info.parameters)
        light = tracking.observe_input(decoded.image, *decoded.original_size)
        await tracking.record(logged, sha256=decoded.sha256, size=decoded.size, light=light)


async def get_prediction_service(request: Request) -> PredictionService:
    # async for the reason gateway.dependencies.get_services gives: no worker-thread hop per request.
    service: PredictionService = request.app.state.prediction
    return service


PredictionServiceDep = Annotated[PredictionService, Depends(get_prediction_service)]
