"""kill -9 the gateway while feedback streams in: every acknowledged (2xx) label survives.

Needs no Triton: feedback touches only the prediction log, so the gateway runs as a real
subprocess (``python -m gateway``) against a log pre-filled with predictions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from serving.processes import free_port
from tracking import PerformanceTracker

PREDICTIONS = 400


@contextmanager
def gateway_process(db: Path, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "TRITON_URL": f"127.0.0.1:{free_port()}",  # nothing listens: predictions are not needed here
        "TRACKING_DB": str(db),
        "STATS_SNAPSHOT_PATH": "",
    }
    env.pop("API_KEY", None)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("gateway did not start:\n" + log.read_text()[-2000:])
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_kill_minus_9_loses_no_acknowledged_feedback(tmp_path: Path) -> None:
    db = tmp_path / "predictions.db"
    tracker = PerformanceTracker(db)
    for i in range(PREDICTIONS):
        tracker.log_prediction("cat", 0.9, 5.0, request_id=f"r{i}")
    tracker.close()

    acknowledged: list[str] = []
    lock = threading.Lock()
    with gateway_process(db, tmp_path / "gateway.log") as (proc, url):

        def send(i: int) -> None:
            label = "cat" if i % 3 else "dog"
            try:
                response = httpx.post(
                    url + "/feedback", json={"request_id": f"r{i}", "true_label": label}, timeout=5
                )
            except httpx.HTTPError:
                return  # the server died under this request: not acknowledged, nothing promised
            if response.status_code in (200, 201):
                with lock:
                    acknowledged.append(f"r{i}")

        def killer() -> None:
            while len(acknowledged) < 60 and proc.poll() is None:
                time.sleep(0.005)
            os.kill(proc.pid, signal.SIGKILL)

        threading.Thread(target=killer, daemon=True).start()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, range(PREDICTIONS)))
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL

    assert 60 <= len(acknowledged) < PREDICTIONS, "the kill must land while feedback is streaming"
    stored = PerformanceTracker(db)
    for rid in acknowledged:
        row = stored.store.get(rid)
        assert row is not None and row["true_label"] == ("cat" if int(rid[1:]) % 3 else "dog"), rid
    stored.close()

    with gateway_process(db, tmp_path / "gateway2.log") as (_, url):
        stats = httpx.get(url + "/stats", params={"window": "all"}, timeout=10).json()
    assert stats["counts"]["labelled"] >= len(acknowledged)
