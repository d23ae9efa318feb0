"""Who gets served: the gateway's admission limits, and the client's disconnect.

Refusing early (429 when the in-flight or batch limit is reached, 503 when Triton cannot answer) keeps
latency bounded under overload; a request whose client has gone is cancelled, down to its Triton call.
Used by gateway/prediction_service.py around every prediction.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import Request

from contract.model_info import ModelInfo
from gateway.dependencies import Services
from gateway.errors import ApiError

T = TypeVar("T")


class ClientGoneError(Exception):
    pass


# ------------------------------------------------------------------------------------------- admission


@asynccontextmanager
async def admitted(services: Services) -> AsyncIterator[None]:
    """The gateway's own in-flight limit: beyond it, 429 at once rather than a growing queue.

    Slots held by requests waiting on a Triton that stopped answering are not overload: that is 503.
    """
    if services.model.unresponsive:
        services.model.request_check()
        raise model_unavailable(services, services.model.last.reason)
    if services.in_flight >= services.settings.max_in_flight:
        if not services.model.ready:
            raise model_unavailable(services, services.model.last.reason)
        if services.model.silent:
            # Every slot is held and Triton has answered nothing for a while: frozen, not busy
            # (a busy Triton answers, if only "queue full"). Probe now; meanwhile 503, not 429.
            services.model.request_check()
            raise model_unavailable(services, "Triton is not answering")
        raise retry_later(services, 429, "overloaded", "too many requests in flight; retry shortly")
    services.in_flight += 1
    services.metrics.in_flight.inc()
    try:
        yield
    finally:
        services.in_flight -= 1
        services.metrics.in_flight.dec()


@asynccontextmanager
async def batch_admitted(services: Services) -> AsyncIterator[None]:
    """Batches decoding at once are capped (MAX_CONCURRENT_BATCHES): each holds up to decode-threads
    uploads in memory, so the cap bounds the memory of all batches together."""
    if services.batches >= services.settings.max_concurrent_batches:
        raise retry_later(
            services, 429, "overloaded", f"{services.batches} batches are being processed; retry shortly"
        )
    services.batches += 1
    try:
        yield
    finally:
        services.batches -= 1


def retry_later(services: Services, status: int, error: str, detail: str) -> ApiError:
    """A refusal that says when to come back (429 and 503 answers carry Retry-After)."""
    return ApiError(status, error, detail, headers={"Retry-After": str(services.settings.retry_after_s)})


def model_unavailable(services: Services, reason: str) -> ApiError:
    return retry_later(services, 503, "model_unavailable", f"the model server is not available ({reason})")


def require_model(services: Services) -> ModelInfo:
    info = services.model.info
    if info is None:
        raise retry_later(services, 503, "model_unavailable", "the model is not loaded yet")
    return info


# ---------------------------------------------------------------------------- deadline and disconnect


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
