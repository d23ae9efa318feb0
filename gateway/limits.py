"""Refuse an oversized upload from its Content-Length, before the body is read or spooled to disk,
and a body that arrives too slowly (``BODY_TIMEOUT_S``, slowloris) with a 408.

A pure ASGI middleware (not BaseHTTPMiddleware): its ``receive`` wrappers pass ``http.disconnect``
through, so the predict handlers can still notice a client that disconnects.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Multipart boundaries and headers around the file bytes (the caller adds it where the body is multipart).
MULTIPART_OVERHEAD = 64 * 1024
# An oversized body is read and thrown away (no memory, no disk) up to this much, so the client gets
# its 413 instead of a reset connection mid-upload; beyond it the connection is simply closed.
_DRAIN_LIMIT = 256 * 1024 * 1024


class UploadLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limit_for: Callable[[str], int | None],
        on_reject: Callable[[], None],
        body_timeout_s: float,
    ) -> None:
        """``limit_for(path)``: the cap on the whole request body there, in bytes (None: no cap)."""
        self.app = app
        self.limit_for = limit_for
        self.on_reject = on_reject
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") in ("POST", "PUT", "PATCH"):
            receive = _deadline(receive, self.body_timeout_s)
        if scope["type"] == "http" and scope.get("method") == "POST":
            limit = self.limit_for(scope.get("path", ""))
            length = _content_length(scope)
            if limit is not None and length is not None and length > limit:
                self.on_reject()
                if length <= _DRAIN_LIMIT:
                    await _drain(receive)
                body = json.dumps(
                    {"error": "too_large", "detail": f"request body of {length} bytes exceeds {limit} bytes"}
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 413,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
            if limit is not None and length is None:
                # Chunked: no length to check up front, so count while the body streams in.
                receive = _counting(receive, limit, self.on_reject)
        await self.app(scope, receive, send)


def _deadline(receive: Receive, timeout_s: float) -> Receive:
    """``receive`` that raises a 408 (JSON through the app's handler; the connection is then closed)
    when the whole body has not arrived ``timeout_s`` after the first read of it.

    Only the body is timed: once it is complete, a handler waiting for ``http.disconnect`` waits freely.
    """
    deadline: float | None = None
    complete = False

    async def timed() -> Message:
        nonlocal deadline, complete
        if complete:
            return await receive()
        if deadline is None:
            deadline = time.monotonic() + timeout_s
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                message = await receive()
        except TimeoutError:
            raise HTTPException(
                408,
                f"the request body did not arrive within {timeout_s:g} s",
                headers={"Connection": "close"},
            ) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            complete = True
        return message

    return timed


def _counting(receive: Receive, cap: int, on_reject: Callable[[], None]) -> Receive:
    """``receive`` that raises a 413 (JSON through the app's handler) once the body passes ``cap``.

    A pass-through otherwise, so ``http.disconnect`` still reaches the handlers.
    """
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > cap:
                on_reject()
                raise HTTPException(413, f"request body exceeds {cap} bytes")
        return message

    return counted


async def _drain(receive: Receive) -> None:
    try:
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
    except HTTPException:
        return  # too slow to drain: answer the 413 now (the connection closes after it)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
