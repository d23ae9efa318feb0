"""``python -m gateway``: serve the gateway with uvicorn; settings come from the environment."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import uvicorn
from pydantic import ValidationError

from gateway.app import create_app
from gateway.logging_setup import configure_logging
from gateway.server import SECURITY_HEADERS, ensure_fd_headroom, protocol_class
from gateway.settings import Settings


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options from the settings: one place for ``python -m gateway`` and in-process servers."""
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        "timeout_keep_alive": settings.keep_alive_s,
        "timeout_graceful_shutdown": 5,
        # h11 with a head-size cap, a connection cap and a head deadline (gateway/server.py), instead
        # of httptools, which has no header limit. Its cost: benchmarks/http_parser.py.
        "http": protocol_class(settings),
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "headers": SECURITY_HEADERS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway",
        description="Run the gateway. Configure it with environment variables "
        "(TRITON_URL, TRITON_PROTOCOL, MODEL_NAME, HOST, PORT, LOG_LEVEL, MAX_UPLOAD_BYTES, ...); "
        "the flags below override HOST and PORT.",
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
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        **server_options(settings),
        log_config=None,  # keep the JSON logging configured above
        access_log=False,  # prediction_completed already records each request, in JSON
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
