"""Graceful drain on SIGTERM, so a rolling restart or a scale-in loses no request.

Order: SIGTERM → ``/health/ready`` answers 503 and responses carry ``Connection: close`` (keep-alive
clients and proxies reconnect elsewhere), while requests are still served for
``DRAIN_TIMEOUT_S`` (the time a load balancer needs to stop sending: Kubernetes endpoint removal,
a proxy's failed connect) → uvicorn stops accepting, lets requests in flight finish (bounded by
``REQUEST_TIMEOUT_S``) → lifespan shutdown → exit. SIGINT (``make stop``, Ctrl-C) and a second
SIGTERM skip the wait. Kubernetes' ``terminationGracePeriodSeconds`` must exceed
DRAIN_TIMEOUT_S + REQUEST_TIMEOUT_S.
"""

from __future__ import annotations

import signal
import time
from types import FrameType

import structlog
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("gateway.drain")


class Drain:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.deadline: float | None = None
        self.announced = False

    @property
    def draining(self) -> bool:
        return self.deadline is not None

    def begin(self) -> None:
        # Called from a signal handler: only plain assignments here (no logging, no locks).
        if self.deadline is None:
            self.deadline = time.monotonic() + self.timeout_s

    def due(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


class CloseWhileDraining:
    """ASGI middleware: while draining, every response closes its connection after it is sent."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.drain.draining:
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, send_closing)


class DrainingServer(uvicorn.Server):
    """uvicorn, with SIGTERM turned into a drain of ``drain.timeout_s`` before the usual shutdown."""

    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        super().__init__(config)
        self.drain = drain

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if (
            sig == signal.SIGTERM
            and self.drain.timeout_s > 0
            and not self.drain.draining
            and not self.should_exit
        ):
            self._captured_signals.append(sig)  # re-raised by uvicorn after shutdown, as it does
            self.drain.begin()
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.drain.draining and not self.drain.announced:
            self.drain.announced = True
            log.info("drain_started", drain_timeout_s=self.drain.timeout_s)
        if self.drain.due() and not self.should_exit:
            log.info("drain_finished", in_flight_connections=len(self.server_state.connections))
            self.should_exit = True
        return await super().on_tick(counter)
