"""The prediction log off the request path, through the real gateway, Triton and SQLite.

What is promised (gateway/tracking.py, tracking/batch_writer.py): /predict rows are committed in
groups within TRACKING_FLUSH_INTERVAL_MS; a clean stop commits every queued row; kill -9 loses at
most the rows answered in the last flush window and never an acknowledged label; feedback on a
prediction whose row is still queued (here, or on another replica) succeeds.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from gateway import Settings
from serving.processes import free_port
from tests.support.gateway import GatewayServer, gateway_settings, wait_ready
from tests.support.photos import photo
from tracking.store import SqliteStore

PHOTOS = [photo(500 + i, size=(96, 72)) for i in range(8)]


def _predict(client: httpx.Client, n: int) -> dict[str, Any]:
    for _ in range(20):  # the test Triton's queue is tiny on purpose: a burst may get 429
        response = client.post(
            "/predict", files={"file": (f"{n}.jpg", PHOTOS[n % len(PHOTOS)], "image/jpeg")}
        )
        if response.status_code != 429:
            break
        time.sleep(0.05)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def _ids_in(db: Path) -> dict[str, str | None]:
    """id → true_label, read from the file by a connection of its own (not the gateway's)."""
    store = SqliteStore(db)
    try:
        return {row["id"]: row["true_label"] for row in store.rows_since(None)}
    finally:
        store.close()


@contextmanager
def gateway_process(
    triton: Any, db: Path, log: Path, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``python -m gateway`` as a real process (a kill -9 must take its memory with it)."""
    port = free_port()
    environment = {
        **os.environ,
        "PORT": str(port),
        "TRITON_URL": triton.grpc_url,
        "TRACKING_DB": str(db),
        "STATS_SNAPSHOT_PATH": "",
        "DRAIN_TIMEOUT_S": "0",
        "CACHE_TTL_S": "0",
        **env,
    }
    environment.pop("API_KEY", None)
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gateway"], env=environment, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=5) as client:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    if client.get("/health/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None:
                    break
                time.sleep(0.2)
            else:
                raise RuntimeError("gateway not ready:\n" + log.read_text()[-2000:])
        assert proc.poll() is None, log.read_text()[-2000:]
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(15)


def test_concurrent_predictions_are_committed_in_groups(triton: Any, tmp_path: Path) -> None:
    settings = gateway_settings(
        triton.grpc_url, tracking_db=tmp_path / "p.db", tracking_flush_interval_ms=50, cache_ttl_s=0
    )
    with GatewayServer(settings) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        wait_ready(client)
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda n: _predict(client, n), range(80)))
        # /stats commits this process's queued rows before it counts.
        assert client.get("/stats", params={"window": "all"}).json()["counts"]["predictions"] == 80
        text = client.get("/metrics").text
    assert set(_ids_in(tmp_path / "p.db")) == {a["request_id"] for a in answers}
    assert _metric(text, "prediction_log_committed_rows_total") == 80
    commits = _metric(text, "prediction_log_commits_total")
    assert 1 <= commits <= 40, f"{commits} commits for 80 rows: not grouped"
    assert _metric(text, "prediction_log_queue_depth") == 0
    assert 'prediction_log_dropped_total{reason="queue_full"} 0.0' in text


def test_a_clean_stop_commits_every_queued_row(triton: Any, tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    # A long interval: the rows are still queued when SIGTERM arrives.
    with gateway_process(triton, db, tmp_path / "gw.log", TRACKING_FLUSH_INTERVAL_MS="1000") as (proc, url):
        with httpx.Client(base_url=url, timeout=30) as client:
            ids = [_predict(client, n)["request_id"] for n in range(6)]
            queued = _metric(client.get("/metrics").text, "prediction_log_queue_depth")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == -signal.SIGTERM  # uvicorn re-raises the signal once shut down
    assert "gateway_stopped" in (tmp_path / "gw.log").read_text(), "not a clean stop"
    assert queued > 0, "nothing was queued at the stop: the test proves nothing"
    assert set(ids) <= set(_ids_in(db))


def test_kill_9_loses_only_the_last_flush_window_and_no_acknowledged_label(
    triton: Any, tmp_path: Path
) -> None:
    db = tmp_path / "p.db"
    interval_s = 0.2
    # Time for the commit itself and for a busy 2-core machine to schedule the writer thread.
    slack_s = 0.8
    answered: dict[str, float] = {}  # request_id → when its 200 arrived
    acked: dict[str, str] = {}
    lock = threading.Lock()
    stop = threading.Event()
    # Any label commits every queued row (it must commit its own, and the queue is FIFO): so labels
    # stop a while before the kill, and only the flush interval commits the rows answered since.
    labels_off = threading.Event()
    env = {"TRACKING_FLUSH_INTERVAL_MS": str(interval_s * 1000), "TRACKING_QUEUE_SIZE": "1000"}
    with gateway_process(triton, db, tmp_path / "gw.log", **env) as (proc, url):

        def client_loop(k: int) -> None:
            with httpx.Client(base_url=url, timeout=10) as client:
                n = k
                while not stop.is_set():
                    n += 4
                    try:
                        response = client.post(
                            "/predict", files={"file": ("p.jpg", PHOTOS[n % len(PHOTOS)], "image/jpeg")}
                        )
                        if response.status_code != 200:
                            continue
                        rid = response.json()["request_id"]
                        with lock:
                            answered[rid] = time.time()
                        if labels_off.is_set() or n % 16 >= 4:  # feedback on a quarter at first
                            continue
                        label = ("cat", "dog")[n % 2]
                        ack = client.post("/feedback", json={"request_id": rid, "true_label": label})
                        if ack.status_code in (200, 201):
                            with lock:
                                acked[rid] = label
                    except httpx.HTTPError:
                        return  # the gateway died under this request: nothing was promised

        threads = [threading.Thread(target=client_loop, args=(k,), daemon=True) for k in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(acked) < 15 and time.monotonic() < deadline:
            time.sleep(0.01)
        labels_off.set()
        time.sleep(0.5)  # a label in flight gets its answer
        unlabelled_from = len(answered)
        # Predictions only, for several flush windows: rows left behind by the timer would show.
        while len(answered) < unlabelled_from + 80 and time.monotonic() < deadline:
            time.sleep(0.001)
        killed_at = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        stop.set()
        for thread in threads:
            thread.join(15)
        assert proc.returncode == -signal.SIGKILL

    assert len(acked) >= 15, "the kill must land while predictions and feedback stream"
    stored = _ids_in(db)
    # Every acknowledged label is on disk, and so is the prediction it labels.
    assert {rid: stored.get(rid) for rid in acked} == acked
    # Missing predictions: only rows answered in the last flush window before the kill.
    lost = {rid: at for rid, at in answered.items() if rid not in stored}
    older = {
        rid: round(killed_at - at, 3) for rid, at in lost.items() if at < killed_at - interval_s - slack_s
    }
    assert not older, f"rows answered long before the kill were lost (s before kill): {older}"
    assert len(lost) <= 1000  # TRACKING_QUEUE_SIZE: the most a crash can lose
    print(f"\nkill -9: {len(answered)} answered, {len(acked)} labels acknowledged, {len(lost)} rows lost")


def test_feedback_on_a_prediction_still_queued_succeeds_at_once(triton: Any, tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    settings = gateway_settings(triton.grpc_url, tracking_db=db, tracking_flush_interval_ms=1000)
    with GatewayServer(settings) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        wait_ready(client)
        rid = _predict(client, 1)["request_id"]
        assert rid not in _ids_in(db), "the row must still be queued for this test to mean anything"
        started = time.monotonic()
        ack = client.post("/feedback", json={"request_id": rid, "true_label": "dog"})
        took = time.monotonic() - started
        assert ack.status_code == 201, ack.text
    # Committed on demand, not after the 1 s interval (nor by the unknown-id retry).
    assert took < 0.5, took
    assert _ids_in(db)[rid] == "dog"


def test_feedback_through_another_gateway_waits_for_the_first_ones_flush(triton: Any, tmp_path: Path) -> None:
    db = tmp_path / "p.db"  # one log shared by two gateways, as replicas share PostgreSQL
    one, other = (
        gateway_settings(triton.grpc_url, tracking_db=db, tracking_flush_interval_ms=300) for _ in range(2)
    )
    with (
        GatewayServer(one) as a,
        GatewayServer(other) as b,
        httpx.Client(base_url=a.url, timeout=30) as client_a,
        httpx.Client(base_url=b.url, timeout=30) as client_b,
    ):
        wait_ready(client_a)
        wait_ready(client_b)
        rid = _predict(client_a, 2)["request_id"]
        assert rid not in _ids_in(db), "the row must still be queued on A for this test to mean anything"
        ack = client_b.post("/feedback", json={"request_id": rid, "true_label": "cat"})
        assert ack.status_code == 201, ack.text
        unknown = client_b.post("/feedback", json={"request_id": "never-made", "true_label": "cat"})
        assert unknown.status_code == 404
    assert _ids_in(db)[rid] == "cat"


def test_a_locked_log_does_not_hold_up_predictions(triton: Any, tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    settings = gateway_settings(triton.grpc_url, tracking_db=db, tracking_flush_interval_ms=5, cache_ttl_s=0)
    with GatewayServer(settings) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        wait_ready(client)
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the log: commits wait (busy timeout 10 s)
        try:
            started = time.monotonic()
            ids = [_predict(client, n)["request_id"] for n in range(5)]
            took = time.monotonic() - started
            queued = _metric(client.get("/metrics").text, "prediction_log_queue_depth")
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert took < 5, f"5 predictions took {took:.1f} s while the log was locked"
        assert queued == 5
        assert client.get("/stats", params={"window": "all"}).json()["counts"]["predictions"] == 5
    assert set(ids) <= set(_ids_in(db))


def test_flush_interval_and_queue_size_are_bounded_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKING_FLUSH_INTERVAL_MS", "2.5")
    monkeypatch.setenv("TRACKING_QUEUE_SIZE", "64")
    settings = Settings()
    assert (settings.tracking_flush_interval_ms, settings.tracking_queue_size) == (2.5, 64)
    for name, value in (
        ("TRACKING_FLUSH_INTERVAL_MS", "-1"),
        ("TRACKING_FLUSH_INTERVAL_MS", "5000"),
        ("TRACKING_QUEUE_SIZE", "0"),
    ):
        monkeypatch.setenv(name, value)
        with pytest.raises(ValidationError, match=name.lower()):
            Settings()
        monkeypatch.delenv(name)
