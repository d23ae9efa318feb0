"""PID files and the polite stop (SIGINT, then SIGKILL), on real child processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving.processes import is_running, read_pid, stop_by_pid_file, stop_pid, wait_http_ok, write_pid

IGNORES_SIGINT = (
    "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "print('up', flush=True); time.sleep(60)"
)
EXITS_ON_SIGINT = "import time; print('up', flush=True); time.sleep(60)"


def _spawn(code: str) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "up"
    return process


def test_sigint_is_enough_for_a_well_behaved_process(tmp_path: Path) -> None:
    process = _spawn(EXITS_ON_SIGINT)
    pid_file = tmp_path / "svc.pid"
    write_pid(pid_file, process.pid)
    message = stop_by_pid_file(pid_file, timeout_s=10)
    assert message == f"svc: stopped (pid {process.pid})"
    # stop_pid reaps its own children, so Popen only learns that the process is gone.
    process.wait(timeout=5)
    assert not is_running(process.pid)
    assert not pid_file.exists()


def test_a_process_ignoring_sigint_is_killed_after_the_timeout() -> None:
    process = _spawn(IGNORES_SIGINT)
    started = time.monotonic()
    assert stop_pid(process.pid, timeout_s=0.5) is True  # True: it took SIGKILL
    process.wait(timeout=5)
    assert not is_running(process.pid)
    assert time.monotonic() - started < 5


def test_stale_pid_files_are_cleared(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    pid_file = tmp_path / "gone.pid"
    write_pid(pid_file, process.pid)
    assert not is_running(process.pid)
    assert read_pid(pid_file) is None
    assert not pid_file.exists()
    assert stop_by_pid_file(pid_file) == "gone: not running"


def test_a_service_that_dies_during_start_up_fails_fast_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "svc.log"
    log.write_text("loading...\nfatal: port already in use\n")
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="port already in use"):
        wait_http_ok("http://127.0.0.1:9/", timeout_s=30, pid=process.pid, log_file=log, what="svc")
    assert time.monotonic() - started < 10


def test_waiting_times_out_with_the_log_tail(tmp_path: Path) -> None:
    process = _spawn(EXITS_ON_SIGINT)
    try:
        with pytest.raises(TimeoutError, match="no log at"):
            wait_http_ok(
                "http://127.0.0.1:9/", timeout_s=0.5, pid=process.pid, log_file=tmp_path / "x", what="svc"
            )
    finally:
        process.kill()
        process.wait()
