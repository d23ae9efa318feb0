"""The gateway's HTTP/1.1 connection handling: uvicorn's h11 protocol with the limits a public port needs.

uvicorn's default parser (httptools) has no cap on request headers: 32 MB of them grew the process by
37 MiB and a 300 MB header froze the event loop for seconds. h11 refuses a request head larger than
``MAX_HEADER_BYTES`` as soon as its buffer passes it. On top of h11 this protocol adds what neither
parser does:

* a cap on open connections (``MAX_CONNECTIONS``): the connection over the cap gets a JSON 503 and is
  closed at once, so an idle-connection flood cannot use up the process's file descriptors;
* a deadline for the request head (``HEADER_TIMEOUT_S``), from the connection's first moment or the next
  request's first byte: a slowloris client, or a connection that never sends anything, is closed with a
  408 instead of holding its slot forever (uvicorn arms its keep-alive timer only after a response);
* parser-level refusals as JSON ``{error, detail}`` like every other gateway error (uvicorn's are text).

The body deadline (``BODY_TIMEOUT_S``) is enforced in the ASGI layer (gateway/limits.py), where a
timeout can become the app's JSON 408.
"""

from __future__ import annotations

import asyncio
import json
import resource
from typing import Any

import h11
import structlog
from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway.settings import Settings

log = structlog.get_logger("gateway.server")

SECURITY_HEADERS = [("x-content-type-options", "nosniff")]
# File descriptors the process needs besides client connections: Triton channels, the prediction log,
# the decode pool, logs, Python's own imports. MAX_CONNECTIONS must leave this much under the fd limit.
FD_RESERVE = 128


def raw_response(status: int, reason: str, error: str, detail: str, **extra: str) -> bytes:
    """A complete HTTP/1.1 JSON error response that closes the connection (written before any ASGI app)."""
    body = json.dumps({"error": error, "detail": detail}).encode()
    headers = {
        "content-type": "application/json",
        "content-length": str(len(body)),
        "connection": "close",
        **dict(SECURITY_HEADERS),
        **extra,
    }
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + body


class LimitedH11Protocol(H11Protocol):
    """One instance per connection; limits come from class attributes set by :func:`protocol_class`."""

    max_connections = 1024
    header_timeout_s = 10.0
    max_header_bytes = 16 * 1024
    retry_after_s = 1

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(
                raw_response(
                    503,
                    "Service Unavailable",
                    "too_many_connections",
                    f"the gateway has {self.max_connections} connections open; retry shortly",
                    **{"retry-after": str(self.retry_after_s)},
                )
            )
            transport.close()
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # the first byte of the next request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm_head_timer()  # the head is complete (or the connection failed)

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a response is still being written: its own cycle owns the connection
        self.transport.write(
            raw_response(
                408,
                "Request Timeout",
                "request_timeout",
                f"the request head did not arrive within {self.header_timeout_s:g} s",
            )
        )
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        # h11 refuses a head past its size cap with the same RemoteProtocolError as a malformed one;
        # the size of what it holds tells them apart.
        buffered = len(self.conn.trailing_data[0])
        if buffered >= self.max_header_bytes:
            status, reason, error = 431, "Request Header Fields Too Large", "headers_too_large"
            detail = f"the request head exceeds {self.max_header_bytes} bytes"
        else:
            status, reason, error = 400, "Bad Request", "bad_request"
            detail = "malformed HTTP request"
        self.transport.write(raw_response(status, reason, error, detail))
        self.transport.close()


def protocol_class(settings: Settings) -> type[LimitedH11Protocol]:
    """The protocol class uvicorn instantiates per connection, with this process's limits."""
    return type(
        "GatewayH11Protocol",
        (LimitedH11Protocol,),
        {
            "max_connections": settings.max_connections,
            "header_timeout_s": settings.header_timeout_s,
            "max_header_bytes": settings.max_header_bytes,
            "retry_after_s": settings.retry_after_s,
        },
    )


def ensure_fd_headroom(max_connections: int) -> str | None:
    """Raise the soft open-file limit towards the hard one if MAX_CONNECTIONS needs it.

    Returns an error line when even the hard limit is too low (start-up then refuses to run rather
    than die of EMFILE under a connection flood), else None.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = max_connections + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, max(needed, soft))
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft != resource.RLIM_INFINITY and soft < needed:
        return (
            f"MAX_CONNECTIONS={max_connections} needs {needed} open files, the limit is {soft}; "
            f"lower MAX_CONNECTIONS or raise `ulimit -n`"
        )
    return None
