"""Issue 19 (hardening, round 2): what an outside probe did to a running gateway, each case rebuilt here
on loopback with bounded loops. Gateways run with the default settings (tracking, prediction log and
response cache on) except where a test shortens a timeout or a cap to stay fast, which it says."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import http.server
import json
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.hardening.payloads import huge_head, scan_bomb
from tests.hardening.results import Figures
from tests.support.gateway import GatewayServer, gateway_settings, wait_ready
from tests.support.photos import photo
from tests.support.triton import TritonFixture

pytestmark = [pytest.mark.triton, pytest.mark.slow]

ROUND2 = "Round 2 (issue 19): before and after"
COLUMNS = ["finding", "before (outside probe, issue 19)", "after (this run)", "test"]
MIB = 1024 * 1024


def _fresh_photo() -> bytes:
    """Never sent before in this session: the response cache cannot answer for it."""
    return photo(int(uuid.uuid4().int % 1_000_000) + 10_000, size=(160, 120))


def _normal_latencies(url: str, until: Callable[[], bool], limit_s: float = 20.0) -> list[float]:
    """Sequential /predict of fresh photos until ``until()``; each latency in seconds (any status)."""
    latencies: list[float] = []
    stop_at = time.monotonic() + limit_s
    with httpx.Client(base_url=url, timeout=30) as http:
        while not until() and time.monotonic() < stop_at:
            started = time.monotonic()
            response = http.post("/predict", files={"file": ("a.jpg", _fresh_photo())})
            latencies.append(time.monotonic() - started)
            assert response.status_code in (200, 503), response.text
    return latencies


def _p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


# 1. Decode CPU bombs ------------------------------------------------------------------------------


def test_a_scan_bomb_is_refused_from_its_header(client: httpx.Client) -> None:
    bomb = scan_bomb(2000, 2000, extra_scans=500)  # ~5 s of CPU if decoded; 4 MP, within the pixel cap
    started = time.monotonic()
    response = client.post("/predict", files={"file": ("bomb.jpg", bomb)})
    elapsed = time.monotonic() - started
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "too_many_scans"
    assert elapsed < 1.0, elapsed


def test_a_decode_bomb_flood_leaves_normal_predictions_fast(gateway: GatewayServer, figures: Figures) -> None:
    """Refused bombs (500 extra scans) and heavy-but-allowed ones (40 scans: 1-3 s each, in their own
    low-priority process) from 3 clients while a normal client posts fresh photos: the bombs add under
    1 s to its p95, or the gateway is not ready."""
    refused, heavy = scan_bomb(2000, 2000, 500), scan_bomb(2000, 2000, 30)
    done = threading.Event()
    bomb_statuses: dict[int, int] = {}
    ready_codes: list[int] = []

    def bomber(data: bytes) -> None:
        with httpx.Client(base_url=gateway.url, timeout=30) as http:
            while not done.is_set():
                # no-cache: a cached answer would stand in for the decode under test.
                code = http.post(
                    "/predict", files={"file": ("b.jpg", data)}, headers={"cache-control": "no-cache"}
                ).status_code
                bomb_statuses[code] = bomb_statuses.get(code, 0) + 1

    def prober() -> None:
        with httpx.Client(base_url=gateway.url, timeout=30) as http:
            while not done.is_set():
                ready_codes.append(http.get("/health/ready").status_code)
                time.sleep(0.2)

    # The same client alone first: the machine's own pace (CI shares 2 cores with other suites).
    began = time.monotonic()
    quiet = _normal_latencies(gateway.url, lambda: time.monotonic() - began > 2.0)
    threads = [threading.Thread(target=bomber, args=(d,)) for d in (refused, heavy, heavy)]
    threads.append(threading.Thread(target=prober))
    for thread in threads:
        thread.start()
    began = time.monotonic()
    try:
        latencies = _normal_latencies(gateway.url, lambda: time.monotonic() - began > 5.0)
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=60)
    p95, quiet_p95 = _p95(latencies), _p95(quiet)
    print(
        f"decode-bomb flood: {len(latencies)} normal predictions, p95 {p95 * 1000:.0f} ms "
        f"(alone: {quiet_p95 * 1000:.0f} ms); bombs {sorted(bomb_statuses.items())}; "
        f"readiness {sorted(set(ready_codes))}"
    )
    # The bombs add under 1 s to the p95 the machine gives anyway, or the gateway says it is not ready.
    assert p95 < 1.0 + quiet_p95 or 503 in ready_codes, (p95, quiet_p95, ready_codes)
    # heavy ones: 200 when decoded in time, 503 decode_busy when their lane is full, 504 when the
    # deadline killed their worker process
    assert set(bomb_statuses) <= {422, 200, 503, 504}, bomb_statuses
    assert bomb_statuses.get(422, 0) > 0
    figures.row(
        ROUND2,
        "Findings and figures",
        COLUMNS,
        [
            "1. decode CPU bombs (progressive JPEG, repeated scans)",
            "2 uploads: every /predict 504 for ~2 min, /health/ready 200",
            f"bomb refused from its header (422 too_many_scans), heavy files decoded in a killable "
            f"low-priority process; 3 bombing clients for 5 s: normal /predict p95 {p95 * 1000:.0f} ms "
            f"over {len(latencies)} (alone {quiet_p95 * 1000:.0f} ms)",
            "test_round2.py::test_a_decode_bomb_flood_leaves_normal_predictions_fast",
        ],
    )


# 2. Connections ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tight_gateway(hardening_triton: TritonFixture) -> Iterator[GatewayServer]:
    """Short timeouts and a small connection cap, so each limit is reached within a second or two."""
    settings = gateway_settings(
        hardening_triton.grpc_url, max_connections=40, header_timeout_s=1.0, body_timeout_s=2.0
    )
    with GatewayServer(settings) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        wait_ready(http)
        yield server


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _read_response(sock: socket.socket, limit_s: float = 10.0) -> tuple[int, dict[str, Any] | None, float]:
    """(status, JSON body or None, seconds until the server closed); status 0 if it closed silently."""
    started = time.monotonic()
    sock.settimeout(limit_s)
    raw = b""
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        while chunk := sock.recv(65536):
            raw += chunk
    elapsed = time.monotonic() - started
    if not raw.startswith(b"HTTP/1.1 "):
        return 0, None, elapsed
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body), elapsed
    except ValueError:
        return status, None, elapsed


def test_connections_over_the_cap_get_a_json_503(tight_gateway: GatewayServer) -> None:
    held = [_connect(tight_gateway.url) for _ in range(40)]
    try:
        time.sleep(0.2)
        over = _connect(tight_gateway.url)
        status, body, _ = _read_response(over, limit_s=5)
        over.close()
        assert status == 503 and body is not None and body["error"] == "too_many_connections", (status, body)
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    with httpx.Client(base_url=tight_gateway.url, timeout=30) as http:
        assert http.post("/predict", files={"file": ("a.jpg", _fresh_photo())}).status_code == 200


def test_idle_and_slow_heads_are_closed_with_408(tight_gateway: GatewayServer, figures: Figures) -> None:
    idle = _connect(tight_gateway.url)  # sends nothing at all
    status, body, waited = _read_response(idle)
    idle.close()
    assert status == 408 and body is not None and body["error"] == "request_timeout", (status, body)
    assert waited < 3.0, waited

    slow = _connect(tight_gateway.url)  # a slowloris head: one byte every 0.2 s
    slow.sendall(b"GET /health/live HTTP/1.1\r\n")
    started = time.monotonic()
    with contextlib.suppress(OSError):
        for byte in b"X-Slow: " + b"a" * 40:
            slow.sendall(bytes([byte]))
            time.sleep(0.2)
    status, _, _ = _read_response(slow)
    slow.close()
    assert status == 408, status
    assert time.monotonic() - started < 4.0


def test_a_slow_body_gets_408(tight_gateway: GatewayServer, figures: Figures) -> None:
    sock = _connect(tight_gateway.url)
    sock.sendall(
        b"POST /feedback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 200\r\n\r\n{"
    )
    started = time.monotonic()
    with contextlib.suppress(OSError):
        for _ in range(40):  # 1 byte every 0.2 s: would take 40 s to finish
            sock.sendall(b" ")
            time.sleep(0.2)
            if time.monotonic() - started > 4:
                break
    status, body, _ = _read_response(sock)
    elapsed = time.monotonic() - started
    sock.close()
    assert status == 408 and body is not None and body["error"] == "request_timeout", (status, body)
    assert elapsed < 5.0, elapsed
    figures.row(
        ROUND2,
        "Findings and figures",
        COLUMNS,
        [
            "2. connections: none limited, none timed out",
            "body at 1 byte/s answered after 21 s; ~21,000 idle connections exhausted the fd limit, "
            "real clients reset for 45 s",
            f"over MAX_CONNECTIONS: JSON 503 at connect; idle/slow head: 408 after HEADER_TIMEOUT_S; "
            f"slow body: 408 after BODY_TIMEOUT_S ({elapsed:.1f} s with 2 s set)",
            "test_round2.py::test_connections_over_the_cap_get_a_json_503, ..._408",
        ],
    )


def test_a_slow_client_flood_leaves_normal_predictions_fast(tight_gateway: GatewayServer) -> None:
    """30 connections (under the cap of 40) dribbling heads and bodies, renewed as they are closed."""
    done = threading.Event()

    def dribbler(n: int) -> None:
        while not done.is_set():
            with contextlib.suppress(OSError), _connect(tight_gateway.url) as sock:
                if n % 2:
                    sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
                while not done.is_set():
                    sock.sendall(b"a")
                    time.sleep(0.3)

    threads = [threading.Thread(target=dribbler, args=(n,), daemon=True) for n in range(30)]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    try:
        latencies = _normal_latencies(tight_gateway.url, lambda: time.monotonic() - began > 4.0)
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=10)
    print(f"slow-client flood: {len(latencies)} normal predictions, p95 {_p95(latencies) * 1000:.0f} ms")
    assert _p95(latencies) < 1.0


def test_start_up_refuses_a_connection_cap_above_the_open_file_limit(tmp_path: Path) -> None:
    import resource
    import subprocess
    import sys

    from tests.hardening.hardening_helpers import PROJECT_ROOT

    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    env = {"MAX_CONNECTIONS": "1000", "PORT": "1", "TRACKING_DB": str(tmp_path / "p.db")}
    result = subprocess.run(
        [sys.executable, "-m", "gateway"],
        cwd=PROJECT_ROOT,
        env={**__import__("os").environ, **env},
        preexec_fn=low_fd_limit,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr[-500:]
    assert b"MAX_CONNECTIONS=1000 needs" in result.stderr


# 3. Batch size in bytes ----------------------------------------------------------------------------


def test_a_batch_over_max_batch_bytes_is_413_before_reading(hardening_triton: TritonFixture) -> None:
    """Default MAX_UPLOAD_BYTES (10 MiB) x 8 files allowed 80 MiB per batch; now MAX_BATCH_BYTES caps
    the whole body (lowered to 8 MiB here; BODY_TIMEOUT_S 1 s so the 413 is not held back draining)."""
    settings = gateway_settings(
        hardening_triton.grpc_url, max_upload_bytes=10 * MIB, max_batch_bytes=8 * MIB, body_timeout_s=1.0
    )
    with GatewayServer(settings) as server, _connect(server.url) as sock:
        sock.sendall(
            b"POST /predict/batch HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            + f"Content-Length: {20 * MIB}\r\n\r\n".encode()
            + b"x" * 1024
        )
        status, body, _ = _read_response(sock)
    assert status == 413 and body is not None and body["error"] == "too_large", (status, body)


# 4. Headers ---------------------------------------------------------------------------------------


def test_huge_heads_neither_freeze_the_loop_nor_pass(gateway: GatewayServer, figures: Figures) -> None:
    """Two clients stream 64 MB heads while a normal client posts photos: the heads are refused with
    a JSON 431 after the first MAX_HEADER_BYTES, and normal predictions stay fast."""
    done = threading.Event()
    outcomes: list[tuple[int, int]] = []  # (status, bytes the client got to send)

    def header_bomber() -> None:
        while not done.is_set():
            sent = 0
            with _connect(gateway.url) as sock:
                with contextlib.suppress(OSError):
                    for chunk in huge_head(64 * MIB):
                        sock.sendall(chunk)
                        sent += len(chunk)
                status, _, _ = _read_response(sock, limit_s=5)
            outcomes.append((status, sent))

    bombers = [threading.Thread(target=header_bomber) for _ in range(2)]
    for thread in bombers:
        thread.start()
    began = time.monotonic()
    try:
        latencies = _normal_latencies(gateway.url, lambda: time.monotonic() - began > 4.0)
    finally:
        done.set()
        for thread in bombers:
            thread.join(timeout=60)
    p95 = _p95(latencies)
    statuses = {status for status, _ in outcomes}
    most_sent = max(sent for _, sent in outcomes)
    print(
        f"huge heads: {len(outcomes)} refused {sorted(statuses)}, at most {most_sent / MIB:.1f} MiB sent; "
        f"normal /predict p95 {p95 * 1000:.0f} ms over {len(latencies)}"
    )
    assert statuses <= {431, 0}, statuses  # 0: the server closed before the client read the 431
    assert 431 in statuses
    assert most_sent < 16 * MIB, most_sent
    assert p95 < 1.0, p95
    figures.row(
        ROUND2,
        "Findings and figures",
        COLUMNS,
        [
            "4. headers freeze the event loop",
            "100 MB head stalled the loop 1.5 s; two 300 MB heads: normal requests timed out for 90 s",
            f"JSON 431 after MAX_HEADER_BYTES (16 KiB); 2 clients streaming 64 MB heads: at most "
            f"{most_sent / MIB:.1f} MiB accepted, normal /predict p95 {p95 * 1000:.0f} ms",
            "test_round2.py::test_huge_heads_neither_freeze_the_loop_nor_pass",
        ],
    )


# 5. Trusted request id -----------------------------------------------------------------------------


def test_a_reused_request_id_neither_drops_a_row_nor_misroutes_feedback(client: httpx.Client) -> None:
    answers = [
        client.post("/predict", files={"file": ("a.jpg", _fresh_photo())}, headers={"X-Request-ID": "dup"})
        for _ in range(2)
    ]
    assert all(a.status_code == 200 for a in answers)
    ids = [a.json()["request_id"] for a in answers]
    assert len(set(ids)) == 2 and "dup" not in ids, ids
    assert all(a.json()["client_request_id"] == "dup" for a in answers)
    for rid, answer in zip(ids, answers, strict=True):
        label = answer.json()["predicted_class"]
        feedback = client.post("/feedback", json={"request_id": rid, "true_label": label})
        assert feedback.status_code == 201, feedback.text


# 6. /stats ----------------------------------------------------------------------------------------


def _fill_log(db: Path, rows: int) -> None:
    from tracking.store import SqliteStore

    SqliteStore(db).close()  # the schema
    now = time.time()
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO predictions (id, ts, predicted_class, confidence, latency_ms, true_label)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                (f"seed{i}", now - i, "cat" if i % 3 else "dog", 0.9, 12.0, "cat" if i % 2 else None)
                for i in range(rows)
            ),
        )


def test_stats_is_keyed_cached_and_cannot_crowd_out_predict(
    hardening_triton: TritonFixture, tmp_path: Path, figures: Figures
) -> None:
    db = tmp_path / "predictions.db"
    _fill_log(db, 30_000)
    settings = gateway_settings(hardening_triton.grpc_url, tracking_db=db, api_key="k3y")
    key = {"X-API-Key": "k3y"}
    with GatewayServer(settings) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        wait_ready(http)
        done = threading.Event()
        codes: list[int] = []

        async def storm() -> None:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                while not done.is_set():
                    rs = await asyncio.gather(
                        *(client.get("/stats", params={"window": "all"}, headers=key) for _ in range(20))
                    )
                    codes.extend(r.status_code for r in rs)

        stormer = threading.Thread(target=asyncio.run, args=(storm(),))
        stormer.start()
        began = time.monotonic()
        try:
            latencies = _normal_latencies(server.url, lambda: time.monotonic() - began > 4.0)
        finally:
            done.set()
            stormer.join(timeout=60)
        metrics = http.get("/metrics").text
        unkeyed = http.get("/stats", params={"window": "all"}).status_code
    computed = next(
        (
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith("stats_computations_total")
        ),
        float("nan"),
    )
    p95 = _p95(latencies)
    print(
        f"/stats storm (20 concurrent, 30k rows): {len(codes)} answers {sorted(set(codes))}, "
        f"{computed:.0f} computations; normal /predict p95 {p95 * 1000:.0f} ms over {len(latencies)}"
    )
    assert p95 < 1.0, p95
    assert set(codes) <= {200, 429} and 200 in codes, set(codes)
    assert computed <= 2, computed  # one per STATS_CACHE_S (10 s) for the one window
    assert unkeyed == 401, unkeyed
    figures.row(
        ROUND2,
        "Findings and figures",
        COLUMNS,
        [
            "6. /stats: unauthenticated heavy query",
            "170 ms per call at 30k rows; 20 concurrent raised /predict from ~15 ms to 2.5-3 s",
            f"needs X-API-Key when API_KEY is set; 20 concurrent for 4 s at 30k rows: {len(codes)} answers "
            f"from {computed:.0f} computation(s), normal /predict p95 {p95 * 1000:.0f} ms",
            "test_round2.py::test_stats_is_keyed_cached_and_cannot_crowd_out_predict",
        ],
    )


# 8. Smaller findings -------------------------------------------------------------------------------


def test_head_on_health_endpoints(client: httpx.Client) -> None:
    for path in ("/health/live", "/health/ready", "/health"):
        response = client.head(path)
        assert response.status_code == 200, (path, response.status_code)


def test_nosniff_on_every_response(client: httpx.Client, gateway: GatewayServer) -> None:
    for response in (client.get("/health/live"), client.get("/nowhere"), client.post("/predict")):
        assert response.headers.get("x-content-type-options") == "nosniff", response.url
    with _connect(gateway.url) as sock:
        sock.sendall(b"GARBAGE\r\n\r\n")
        status, body, _ = _read_response(sock)
    assert status == 400 and body is not None and body["error"] == "bad_request", (status, body)


def test_feedback_has_one_body_limit_chunked_or_not(client: httpx.Client) -> None:
    """MAX_JSON_BYTES (16 KiB) whatever the framing; Content-Length bodies used to get 80 KiB."""
    body = json.dumps({"request_id": "x" * (20 * 1024), "true_label": "cat"}).encode()
    with_length = client.post("/feedback", content=body, headers={"content-type": "application/json"})

    def chunks() -> Iterator[bytes]:
        yield body

    chunked = client.post("/feedback", content=chunks(), headers={"content-type": "application/json"})
    assert (with_length.status_code, chunked.status_code) == (413, 413), (with_length.text, chunked.text)


def test_serving_up_waits_for_a_recovering_gateway() -> None:
    from serving.up import gateway_health

    answers = iter([503, 503, 200])

    class Recovering(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = next(answers, 200)
            body = json.dumps({"ready": status == 200, "model": {"name": "m"}}).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recovering)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        health = gateway_health(f"http://127.0.0.1:{server.server_address[1]}", deadline_s=10)
    finally:
        server.shutdown()
    assert health["ready"] is True


def test_no_task_exception_is_left_unretrieved() -> None:
    """The deadline cancels the request just as its work fails: that failure must still be consumed."""
    from gateway.admission import unless_disconnected

    class Waiting:
        async def receive(self) -> dict[str, str]:
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

    unretrieved: list[str] = []

    async def scenario() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: unretrieved.append(ctx["message"]))

        async def failing() -> None:
            raise RuntimeError("Triton went away")

        outer = asyncio.ensure_future(unless_disconnected(Waiting(), failing()))  # type: ignore[arg-type]
        await asyncio.sleep(0)  # outer starts both tasks and waits
        await asyncio.sleep(0)  # the work fails
        outer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await outer
        await asyncio.sleep(0.01)
        gc.collect()
        await asyncio.sleep(0.01)

    asyncio.run(scenario())
    gc.collect()
    assert not unretrieved, unretrieved
