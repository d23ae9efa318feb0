"""structlog → one JSON object per line on stdout (what log shippers expect).

uvicorn's and other libraries' stdlib logging goes through the same renderer, so every line the
gateway prints is JSON, not a mix of formats.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(level: str = "INFO") -> None:
    numeric = logging.getLevelName(level.upper())
    # structlog hands its event dicts to the stdlib handler below instead of printing them itself:
    # one handler, one lock, one write per record. Two writers on stdout under different locks
    # interleaved two records on one line under load.
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*_SHARED, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # Pillow's DEBUG records print every EXIF tag of an upload (camera, GPS position): never log them.
    logging.getLogger("PIL").setLevel(max(numeric, logging.INFO))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn installs its own handlers unless told not to; ours on the root logger suffice.
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
