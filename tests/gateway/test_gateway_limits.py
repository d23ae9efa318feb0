"""Deadlines, the in-flight limit and the prediction log, on the real stack (Triton + uvicorn)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import time

import httpx
import pytest
import structlog
from PIL import Image

from gateway.logging_setup import configure_logging
from tests.support.gateway import GatewayServer, gateway_settings, wait_ready
from tests.support.photos import photo

pytestmark = [pytest.mark.triton, pytest.mark.slow]


def test_a_request_past_its_deadline_gets_504(triton) -> None:  # type: ignore[no-untyped-def]
    settings = gateway_settings(triton.grpc_url, request_timeout_s=1e-6)
    with GatewayServer(settings) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        wait_ready(http)
        response = http.post("/predict", files={"file": ("a.jpg", photo(1))})
        assert response.status_code == 504, response.text
        assert response.json()["error"] == "timeout"
        assert 'prediction_errors_total{error_type="timeout"} 1.0' in http.get("/metrics").text


def test_the_in_flight_limit_answers_429_and_the_rest_succeed(triton) -> None:  # type: ignore[no-untyped-def]
    settings = gateway_settings(triton.grpc_url, max_in_flight=1, decode_threads=1)
    data = photo(3, size=(1600, 1200))  # slow enough to decode that concurrent requests overlap

    async def burst(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            return await asyncio.gather(
                # no-cache: every admitted request decodes and infers; none is a quick cached answer.
                *(
                    http.post(
                        "/predict", files={"file": ("a.jpg", data)}, headers={"Cache-Control": "no-cache"}
                    )
                    for _ in range(12)
                )
            )

    with GatewayServer(settings) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        wait_ready(http)
        responses = asyncio.run(burst(server.url))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, statuses
    assert 200 in statuses and 429 in statuses, statuses
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"] == "overloaded"


def test_prediction_log_is_json_without_image_data(triton, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("INFO")
    try:
        settings = gateway_settings(triton.grpc_url)
        # A JPEG carrying EXIF GPS data: none of it may reach the log.
        exif = Image.Exif()
        exif[0x8825] = {2: (52.0, 31.0, 12.0), 1: "N"}
        buf = io.BytesIO()
        Image.open(io.BytesIO(photo(9))).save(buf, "JPEG", exif=exif)
        with GatewayServer(settings) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            wait_ready(http)
            capsys.readouterr()
            body = http.post("/predict", files={"file": ("gps.jpg", buf.getvalue())}).json()
        out = capsys.readouterr().out
    finally:
        structlog.reset_defaults()
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    completed = [e for e in events if e["event"] == "prediction_completed"]
    assert len(completed) == 1
    entry = completed[0]
    assert entry["request_id"] == body["request_id"]
    assert entry["predicted_class"] == body["predicted_class"]
    assert entry["model_version"] == "1"
    assert entry["image_bytes"] == len(buf.getvalue())
    assert len(entry["image_sha256"]) == 16
    assert {"confidence", "processing_time_ms", "timestamp", "level"} <= set(entry)
    assert "GPS" not in out and "52.0" not in out and "exif" not in out.lower()


def test_a_client_that_disconnects_stops_the_work(triton) -> None:  # type: ignore[no-untyped-def]
    """Close the socket while the gateway decodes a large PNG: no answer is computed for nobody."""
    settings = gateway_settings(triton.grpc_url, max_upload_bytes=64 * 1024 * 1024, max_pixels=20_000_000)
    data = photo(8, size=(3200, 2400), fmt="PNG")  # PNG has no draft mode: a slow, full decode
    boundary = "boundary42"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n'.encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    ).encode()
    with GatewayServer(settings) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        wait_ready(http)
        with socket.create_connection(("127.0.0.1", settings.port)) as sock:
            sock.sendall(head + body)
            time.sleep(0.05)  # the body is read; decoding has started
        deadline = time.monotonic() + 20
        metrics = ""
        while time.monotonic() < deadline:
            metrics = http.get("/metrics").text
            if 'prediction_errors_total{error_type="client_disconnected"} 1.0' in metrics:
                break
            time.sleep(0.1)
    assert 'prediction_errors_total{error_type="client_disconnected"} 1.0' in metrics
    assert "prediction_requests_total{" not in metrics  # nothing was answered


def _get_health(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return sock.recv(65536)


@pytest.mark.parametrize(("keep_alive_s", "closed"), [(0.3, True), (30.0, False)])
def test_idle_connections_are_kept_for_keep_alive_s(triton, keep_alive_s: float, closed: bool) -> None:  # type: ignore[no-untyped-def]
    """KEEP_ALIVE_S reaches uvicorn: an idle keep-alive connection is closed after it, not before."""
    settings = gateway_settings(triton.grpc_url, keep_alive_s=keep_alive_s)
    with GatewayServer(settings) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        wait_ready(http)
        with socket.create_connection(("127.0.0.1", settings.port), timeout=5) as sock:
            assert _get_health(sock).startswith(b"HTTP/1.1 200")
            time.sleep(1.0)
            if closed:
                assert sock.recv(1) == b"", "the server kept an idle connection past KEEP_ALIVE_S"
            else:
                assert _get_health(sock).startswith(b"HTTP/1.1 200")
