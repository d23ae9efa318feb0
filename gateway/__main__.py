"""``python -m gateway``: serve the gateway with uvicorn; settings come from the environment."""

from __future__ import annotations

import socket
import sys
from typing import Any

import uvicorn
from pydantic import ValidationError

from gateway.app import create_app
from gateway.drain import DrainingServer
from gateway.logging_setup import configure_logging
from gateway.server import SECURITY_HEADERS, ensure_fd_headroom, protocol_class
from gateway.settings import Settings
from imaging.cli import ArgumentParser


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options from the settings: one place for ``python -m gateway`` and in-process servers."""
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        "timeout_keep_alive": settings.keep_alive_s,
        # Requests in flight when the gateway stops accepting finish within their own deadline.
        "timeout_graceful_shutdown": int(settings.request_timeout_s) + 1,
        # h11 with a head-size cap, a connection cap and a head deadline (gateway/server.py), instead
        # of httptools, which has no header limit. Its cost: benchmarks/http_parser.py.
        "http": protocol_class(settings),
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "headers": SECURITY_HEADERS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m gateway",
        description="Run the gateway. Configure it with environment variables "
        "(TRITON_URL, TRITON_PROTOCOL, MODEL_NAME, HOST, PORT, LOG_LEVEL, MAX_UPLOAD_BYTES, "
        "TRACKING_DATABASE_URL, DRAIN_TIMEOUT_S, ...); "
        "the flags below override HOST and PORT. See .env.example for every variable.",
        epilog="""examples:
  python -m gateway --port 8000
  TRITON_URL=127.0.0.1:8001 API_KEY=secret python -m gateway""",
    )
    parser.add_argument("--host", help="address to bind (default: HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: PORT or 8000)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])).upper() or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        print(f"error: invalid gateway settings: {problems}", file=sys.stderr)
        return 2
    problem = ensure_fd_headroom(settings.max_connections)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    # Bind before anything starts: a second gateway on a busy port must stop here, before its
    # lifespan opens (and on shutdown rewrites) the prediction log and run/stats.json it shares
    # with the gateway already serving there.
    try:
        listener = bind(settings.host, settings.port)
    except OSError as exc:
        print(
            f"error: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc} "
            "(another gateway running? stop it or choose another PORT/--port)",
            file=sys.stderr,
        )
        return 1
    configure_logging(settings.log_level)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        **server_options(settings),
        log_config=None,  # keep the JSON logging configured above
        access_log=False,  # prediction_completed already records each request, in JSON
    )
    DrainingServer(config, app.state.drain).run(sockets=[listener])  # SIGTERM drains: gateway/drain.py
    return 0


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, as uvicorn would bind it (its own bind comes after the app's startup)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
    except OSError:
        listener.close()
        raise
    listener.set_inheritable(True)
    return listener


if __name__ == "__main__":
    sys.exit(main())
