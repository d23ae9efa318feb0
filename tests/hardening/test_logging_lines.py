"""Every log line of the gateway is one JSON object, even when threads log at once through structlog
(the gateway's own events) and stdlib logging (uvicorn, libraries): issue 19 saw two records
interleaved on one line under load, when the two wrote to stdout under different locks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.hardening.hardening_helpers import PROJECT_ROOT

SCRIPT = textwrap.dedent(
    """
    import logging, threading
    import structlog
    from gateway.logging_setup import configure_logging

    configure_logging("INFO")
    pad = "x" * 20000  # long records: a write is no longer one small syscall

    def through_structlog(n):
        log = structlog.get_logger("gateway.test")
        for i in range(150):
            log.info("structlog_event", thread=n, i=i, pad=pad)

    def through_stdlib(n):
        log = logging.getLogger("uvicorn.error")
        for i in range(150):
            log.warning("stdlib record %d %d %s", n, i, pad)

    writers = (through_structlog, through_stdlib)
    threads = [threading.Thread(target=f, args=(n,)) for n in range(4) for f in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    """
)


def test_concurrent_structlog_and_stdlib_records_never_share_a_line() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=PROJECT_ROOT, capture_output=True, timeout=60, check=True
    )
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 8 * 150, len(lines)
    broken = []
    for line in lines:
        try:
            json.loads(line)
        except json.JSONDecodeError:
            broken.append(line[:120])
    assert not broken, f"{len(broken)} lines are not one JSON object, e.g. {broken[:2]}"
