"""POST /predict and POST /predict/batch: upload → decode (thread pool) → Triton → JSON."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import numpy as np
import structlog
from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from contract.model import UNCERTAIN_THRESHOLD_PARAMETER
from contract.model_info import ModelInfo
from gateway import schemas
from gateway.decoding import DecodeBusyError, DecodedUpload
from gateway.dependencies import Services, ServicesDep
from gateway.errors import ApiError, from_image_error, from_triton_error
from gateway.triton_backend import TritonError
from imaging import ImageError

log = structlog.get_logger("gateway.predict")
router = APIRouter(tags=["prediction"])
T = TypeVar("T")

# Status for a request whose client left before the answer (nginx's convention; nobody reads it).
CLIENT_CLOSED = 499


class ClientGoneError(Exception):
    pass


def request_id_of(request: Request) -> str:
    """The prediction's id, always generated here: it keys the prediction log and /feedback, so a
    client must not choose it (a reused id lost its row and sent feedback to another image)."""
    return uuid.uuid4().hex


def client_request_id_of(request: Request) -> str | None:
    """The caller's X-Request-ID, kept only to correlate logs and answers; short and printable only,
    so it cannot pollute the logs."""
    given = request.headers.get("x-request-id", "")
    if given and len(given) <= 64 and given.isprintable():
        return given
    return None


def _id_headers(request_id: str, client_request_id: str | None) -> dict[str, str]:
    headers = {"X-Request-ID": request_id}
    if client_request_id is not None:
        headers["X-Client-Request-ID"] = client_request_id
    return headers


@asynccontextmanager
async def admitted(services: Services) -> AsyncIterator[None]:
    """The gateway's own in-flight limit: beyond it, 429 at once rather than a growing queue.

    Slots held by requests waiting on a Triton that stopped answering are not overload: that is 503.
    """
    if services.model.unresponsive:
        services.model.request_check()
        raise _model_unavailable(services, services.model.last.reason)
    if services.in_flight >= services.settings.max_in_flight:
        if not services.model.ready:
            raise _model_unavailable(services, services.model.last.reason)
        if services.model.silent:
            # Every slot is held and Triton has answered nothing for a while: frozen, not busy
            # (a busy Triton answers, if only "queue full"). Probe now; meanwhile 503, not 429.
            services.model.request_check()
            raise _model_unavailable(services, "Triton is not answering")
        raise ApiError(
            429,
            "overloaded",
            "too many requests in flight; retry shortly",
            headers={"Retry-After": str(services.settings.retry_after_s)},
        )
    services.in_flight += 1
    services.metrics.in_flight.inc()
    try:
        yield
    finally:
        services.in_flight -= 1
        services.metrics.in_flight.dec()


def _model_unavailable(services: Services, reason: str) -> ApiError:
    return ApiError(
        503,
        "model_unavailable",
        f"the model server is not available ({reason})",
        headers={"Retry-After": str(services.settings.retry_after_s)},
    )


def _timed_out(services: Services, exc: TimeoutError) -> ApiError:
    """The deadline passed. If a probe has meanwhile found Triton unresponsive it is a 503, not a 504."""
    services.model.request_check()
    if services.model.unresponsive:
        return _model_unavailable(services, services.model.last.reason)
    return ApiError(504, "timeout", f"no answer within {services.settings.request_timeout_s:g} s")


def require_model(services: Services) -> ModelInfo:
    info = services.model.info
    if info is None:
        raise ApiError(
            503,
            "model_unavailable",
            "the model is not loaded yet",
            headers={"Retry-After": str(services.settings.retry_after_s)},
        )
    return info


async def read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    # One byte past the cap is enough to know it is too large without holding the rest.
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ApiError(413, "too_large", f"the file exceeds the limit of {max_bytes} bytes")
    return data


async def _until_disconnected(request: Request) -> None:
    # After the body is read, receive() only returns when the client goes away (or the response is done).
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it (a gRPC call is cancelled at Triton)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_until_disconnected(request))
    # Whichever way this ends (answer, client gone, or the deadline cancelling us while the work has just
    # failed), each task's outcome is consumed: no "Task exception was never retrieved" in the log.
    task.add_done_callback(_consume)
    watcher.add_done_callback(_consume)
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    if task in done:
        return task.result()
    raise ClientGoneError


# Used when neither UNCERTAIN_THRESHOLD nor the served model says: models exported before calibration.
FALLBACK_UNCERTAIN_THRESHOLD = 0.6


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


async def _infer(
    services: Services, images: np.ndarray, info: ModelInfo, deadline: float
) -> tuple[np.ndarray, str]:
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


async def _decode(services: Services, data: bytes, size: int, sha256: str | None = None) -> DecodedUpload:
    started = time.perf_counter()
    try:
        decoded = await services.decoder.decode(data, size, sha256)
    except ImageError as exc:
        raise from_image_error(exc) from exc
    except DecodeBusyError as exc:
        raise ApiError(
            503,
            "decode_busy",
            "too many large or progressive photos are being decoded; retry shortly",
            headers={"Retry-After": str(services.settings.retry_after_s)},
        ) from exc
    services.metrics.stage.labels(stage="decode").observe(time.perf_counter() - started)
    return decoded


def _failed(services: Services, request_id: str, exc: ApiError, client_request_id: str | None) -> None:
    services.metrics.errors.labels(error_type=exc.error).inc()
    log.info(
        "prediction_failed",
        request_id=request_id,
        client_request_id=client_request_id,
        error=exc.error,
        status=exc.status,
    )


@router.post(
    "/predict",
    summary="Classify one photo (multipart field `file`)",
    response_model=None,
    responses=schemas.ok(
        schemas.Prediction,
        "The label, its confidence and every class's probability",
        schemas.PREDICTION_EXAMPLE,
    )
    | schemas.error_responses(400, 413, 415, 422, 429, 500, 502, 503, 504),
)
async def predict(
    request: Request,
    services: ServicesDep,
    file: Annotated[UploadFile | None, File(description="a JPEG, PNG, WebP, GIF or BMP photo")] = None,
) -> Response:
    request_id = request_id_of(request)
    client_request_id = client_request_id_of(request)
    started = time.perf_counter()
    settings = services.settings
    try:
        if file is None:
            raise ApiError(422, "missing_file", "send the photo as multipart/form-data field 'file'")
        # FastAPI would silently keep the last of several `file` parts: refuse the ambiguity instead.
        if len((await request.form()).getlist("file")) > 1:
            raise ApiError(422, "multiple_files", "send one photo in field 'file'; /predict/batch takes many")
        async with admitted(services):
            data = await read_upload(file, settings.max_upload_bytes)
            services.metrics.input_bytes.observe(len(data))
            info = require_model(services)
            sha256 = hashlib.sha256(data).hexdigest()
            cached, cache_state = _cache_lookup(services, request, sha256, info)
            if cached is not None:
                return await _answer_from_cache(
                    services, cached, (request_id, client_request_id), started, sha256, len(data)
                )
            deadline = time.monotonic() + settings.request_timeout_s

            async def decode_and_infer() -> tuple[DecodedUpload, np.ndarray, str]:
                decoded = await _decode(services, data, info.image_size, sha256)
                probabilities, version = await _infer(services, decoded.image[np.newaxis], info, deadline)
                return decoded, probabilities, version

            try:
                async with asyncio.timeout(settings.request_timeout_s):
                    # A client that leaves stops the work: no Triton call after its decode, or the
                    # in-flight gRPC call is cancelled.
                    decoded, probabilities, version = await unless_disconnected(request, decode_and_infer())
            except TimeoutError as exc:
                raise _timed_out(services, exc) from exc
    except ApiError as exc:
        _failed(services, request_id, exc, client_request_id)
        raise
    except ClientGoneError:
        services.metrics.errors.labels(error_type="client_disconnected").inc()
        log.info("prediction_cancelled", request_id=request_id, reason="client disconnected")
        return Response(status_code=CLIENT_CLOSED)

    elapsed = time.perf_counter() - started
    body = prediction_body(probabilities[0], info, uncertain_threshold(settings.uncertain_threshold, info))
    body |= {
        "processing_time_ms": round(elapsed * 1000, 2),
        "model_version": version,
        "request_id": request_id,
    }
    if client_request_id is not None:
        body["client_request_id"] = client_request_id
    _completed(services, body, elapsed, sha256, len(data))
    tracking = services.tracking
    if tracking is not None:
        tracking.follow_model(info.class_names, info.parameters)
        light = tracking.observe_input(decoded.image, *decoded.original_size)
        await tracking.record(body, sha256=sha256, size=len(data), light=light)
        if cache_state == "miss" and str(version) == info.version:
            tracking.cache.put(sha256, info.version, _without_ids(body))
    headers = _id_headers(request_id, client_request_id)
    if cache_state:
        headers["X-Cache"] = cache_state
    return JSONResponse(body, headers=headers)


def _completed(
    services: Services, body: dict[str, Any], elapsed: float, sha256: str, size: int, **extra: str
) -> None:
    """Metrics and the `prediction_completed` log line of one answered /predict (never image bytes)."""
    metrics = services.metrics
    metrics.requests.labels(predicted_class=body["predicted_class"]).inc()
    metrics.latency.observe(elapsed)
    metrics.stage.labels(stage="total").observe(elapsed)
    metrics.confidence.observe(body["confidence"])
    log.info(
        "prediction_completed",
        request_id=body["request_id"],
        client_request_id=body.get("client_request_id"),
        predicted_class=body["predicted_class"],
        confidence=round(body["confidence"], 4),
        uncertain=body["uncertain"],
        processing_time_ms=body["processing_time_ms"],
        model_version=body["model_version"],
        image_sha256=sha256[:16],
        image_bytes=size,
        **extra,
    )


def _cache_lookup(
    services: Services, request: Request, sha256: str, info: ModelInfo
) -> tuple[dict[str, Any] | None, str | None]:
    """(cached body or None, "hit" | "miss" | "bypass" | None when there is no cache)."""
    tracking = services.tracking
    if tracking is None or not tracking.cache.enabled:
        return None, None
    if not services.model.ready:
        # A cached answer would hide an outage: while Triton is down, clients get the 503.
        return None, "bypass"
    no_cache = "no-cache" in request.headers.get("cache-control", "").lower()
    if no_cache or request.headers.get("x-cache-bypass", "").lower() in ("1", "true", "yes"):
        tracking.metrics.cache.labels(result="bypass").inc()
        return None, "bypass"
    cached = tracking.cache.get(sha256, info.version)
    tracking.metrics.cache.labels(result="hit" if cached else "miss").inc()
    return cached, "hit" if cached else "miss"


def _without_ids(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("request_id", "client_request_id")}


async def _answer_from_cache(
    services: Services,
    cached: dict[str, Any],
    ids: tuple[str, str | None],
    started: float,
    sha256: str,
    size: int,
) -> JSONResponse:
    """Same photo, same model, within the TTL: the earlier answer, as a new logged prediction."""
    request_id, client_request_id = ids
    elapsed = time.perf_counter() - started
    body = cached | {"processing_time_ms": round(elapsed * 1000, 2), "request_id": request_id}
    if client_request_id is not None:
        body["client_request_id"] = client_request_id
    _completed(services, body, elapsed, sha256, size, cache="hit")
    assert services.tracking is not None
    await services.tracking.record(body, sha256=sha256, size=size, light=None)
    return JSONResponse(body, headers=_id_headers(request_id, client_request_id) | {"X-Cache": "hit"})


@router.post(
    "/predict/batch",
    summary="Classify up to max-batch photos (repeated field `files`) in one call",
    response_model=None,
    responses=schemas.ok(
        schemas.BatchResult,
        "One result per file; a file that fails carries its own error and does not fail the others",
        schemas.BATCH_EXAMPLE,
    )
    | schemas.error_responses(400, 413, 422, 429, 500, 502, 503, 504),
)
async def predict_batch(
    request: Request,
    services: ServicesDep,
    files: Annotated[
        list[UploadFile] | None, File(description="photos, at most the model's max batch")
    ] = None,
) -> Response:
    request_id = request_id_of(request)
    client_request_id = client_request_id_of(request)
    started = time.perf_counter()
    settings = services.settings
    metrics = services.metrics
    try:
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
            deadline = time.monotonic() + settings.request_timeout_s
            # At most decode-threads files of one batch in memory at once (read → decode → drop bytes).
            reading = asyncio.Semaphore(settings.decode_threads)

            async def decode_and_infer() -> tuple[list[DecodedUpload | ApiError], list[int], np.ndarray, str]:
                items = list(await asyncio.gather(*(_batch_item(services, f, info, reading) for f in files)))
                good = [i for i, item in enumerate(items) if isinstance(item, DecodedUpload)]
                if not good:
                    return items, good, np.empty((0, len(info.class_names)), dtype=np.float32), info.version
                stacked = np.stack([items[i].image for i in good])  # type: ignore[union-attr]
                probabilities, version = await _infer(services, stacked, info, deadline)
                return items, good, probabilities, version

            try:
                async with asyncio.timeout(settings.request_timeout_s):
                    items, good, probabilities, version = await unless_disconnected(
                        request, decode_and_infer()
                    )
            except TimeoutError as exc:
                raise _timed_out(services, exc) from exc
    except ApiError as exc:
        _failed(services, request_id, exc, client_request_id)
        raise
    except ClientGoneError:
        metrics.errors.labels(error_type="client_disconnected").inc()
        log.info("prediction_cancelled", request_id=request_id, reason="client disconnected")
        return Response(status_code=CLIENT_CLOSED)

    elapsed = time.perf_counter() - started
    rows = dict(zip(good, probabilities, strict=True))
    results: list[dict[str, Any]] = []
    for index, (upload, item) in enumerate(zip(files, items, strict=True)):
        entry: dict[str, Any] = {"index": index, "filename": upload.filename}
        if isinstance(item, ApiError):
            entry |= {"error": item.error, "detail": item.detail, "status": item.status}
            metrics.errors.labels(error_type=item.error).inc()
        else:
            entry |= prediction_body(
                rows[index], info, uncertain_threshold(settings.uncertain_threshold, info)
            )
            metrics.requests.labels(predicted_class=entry["predicted_class"]).inc()
            metrics.confidence.observe(entry["confidence"])
            log.info(
                "prediction_completed",
                request_id=request_id,
                client_request_id=client_request_id,
                batch_index=index,
                predicted_class=entry["predicted_class"],
                confidence=round(entry["confidence"], 4),
                uncertain=entry["uncertain"],
                processing_time_ms=round(elapsed * 1000, 2),
                model_version=version,
                image_sha256=item.sha256[:16],
            )
            if services.tracking is not None:
                # Each photo is its own logged prediction, so feedback can name it.
                entry["request_id"] = f"{request_id}-{index}"
                services.tracking.follow_model(info.class_names, info.parameters)
                light = services.tracking.observe_input(item.image, *item.original_size)
                await services.tracking.record(
                    entry
                    | {
                        "processing_time_ms": round(elapsed * 1000, 2),
                        "model_version": version,
                        "client_request_id": client_request_id,
                    },
                    sha256=item.sha256,
                    size=item.size,
                    light=light,
                )
        results.append(entry)
    metrics.latency.observe(elapsed)
    metrics.stage.labels(stage="total").observe(elapsed)
    body = {
        "results": results,
        "model_version": version,
        "request_id": request_id,
        "processing_time_ms": round(elapsed * 1000, 2),
    }
    if client_request_id is not None:
        body["client_request_id"] = client_request_id
    return JSONResponse(body, headers=_id_headers(request_id, client_request_id))


@asynccontextmanager
async def batch_admitted(services: Services) -> AsyncIterator[None]:
    """Batches decoding at once are capped (MAX_CONCURRENT_BATCHES): each holds up to decode-threads
    uploads in memory, so the cap bounds the memory of all batches together."""
    if services.batches >= services.settings.max_concurrent_batches:
        raise ApiError(
            429,
            "overloaded",
            f"{services.batches} batches are being processed; retry shortly",
            headers={"Retry-After": str(services.settings.retry_after_s)},
        )
    services.batches += 1
    try:
        yield
    finally:
        services.batches -= 1


async def _batch_item(
    services: Services, upload: UploadFile, info: ModelInfo, reading: asyncio.Semaphore
) -> DecodedUpload | ApiError:
    """A bad file fails only its own item."""
    try:
        async with reading:
            data = await read_upload(upload, services.settings.max_upload_bytes)
            services.metrics.input_bytes.observe(len(data))
            return await _decode(services, data, info.image_size)
    except ApiError as exc:
        return exc
