"""Background processes owned by ``make up``: PID files, readiness waits and a polite stop.

Every process started here gets a PID file under ``run/``; ``make stop`` reads those files back,
so it stops exactly what was started and nothing that merely shares a name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

# Defined in contract.paths; named here too for the callers that know processes by this module.
from contract.paths import PROJECT_ROOT as PROJECT_ROOT
from contract.paths import RUN_DIR as RUN_DIR


def free_port() -> int:
    """A loopback TCP port free right now (the OS picks it), for servers started on free ports."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{pid}\n")


def read_pid(pid_file: Path) -> int | None:
    """The PID recorded in ``pid_file`` if that process still runs, else None (stale files are removed)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if not is_running(pid):
        pid_file.unlink(missing_ok=True)
        return None
    return pid


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    # A zombie child still answers kill(0); reap it if it is ours so it counts as gone.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def stop_pid(pid: int, *, timeout_s: float = 15.0) -> bool:
    """SIGINT (Triton and uvicorn both shut down cleanly on it), then SIGKILL after ``timeout_s``.

    Returns True if the process had to be killed.
    """
    if not is_running(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_running(pid):
            return False
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        if not is_running(pid):
            break
        time.sleep(0.1)
    return True


def stop_by_pid_file(pid_file: Path, *, timeout_s: float = 15.0) -> str:
    """Stop the process recorded in ``pid_file``; returns a one-line account for the user."""
    pid = read_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return f"{pid_file.stem}: not running"
    killed = stop_pid(pid, timeout_s=timeout_s)
    pid_file.unlink(missing_ok=True)
    how = "killed after SIGINT timed out" if killed else "stopped"
    return f"{pid_file.stem}: {how} (pid {pid})"


def http_ok(url: str, *, timeout_s: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return bool(200 <= response.status < 300)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def wait_http_ok(url: str, *, timeout_s: float, pid: int, log_file: Path, what: str) -> None:
    """Poll ``url`` until it answers 2xx; fail fast if the process dies, with the log tail either way."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if http_ok(url):
            return
        if not is_running(pid):
            raise RuntimeError(
                f"{what} exited during start-up. Last lines of {log_file}:\n{log_tail(log_file)}"
            )
        time.sleep(0.2)
    raise TimeoutError(
        f"{what} not ready at {url} after {timeout_s:.0f} s. Last lines of {log_file}:\n{log_tail(log_file)}"
    )
