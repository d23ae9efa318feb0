"""Security properties of the running gateway: CORS off, a size limit on every request body, and no
EXIF/GPS data or image bytes in the logs of the real ``python -m gateway`` process."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from tests.hardening.hardening_helpers import GatewayProcess, start_gateway_process, stop_gateway_process
from tests.hardening.memory import sampled_rss
from tests.hardening.results import Figures
from tests.support.photos import photo
from tests.support.triton import TritonFixture

pytestmark = [pytest.mark.triton, pytest.mark.slow]

EVIL = "https://evil.example"
MIB = 1024 * 1024
# Strings only the EXIF block carries: none may reach a log line.
SECRETS = ("SecretCamMake", "12 Secret Street", "GPSInfo", "GPSLatitude", "51.5007", "exif")


def test_cors_is_off_by_default(client: httpx.Client) -> None:
    simple = client.get("/", headers={"origin": EVIL})
    assert "access-control-allow-origin" not in simple.headers
    predict = client.post("/predict", files={"file": ("a.jpg", photo(1))}, headers={"origin": EVIL})
    assert predict.status_code == 200
    assert "access-control-allow-origin" not in predict.headers
    preflight = client.options("/predict", headers={"origin": EVIL, "access-control-request-method": "POST"})
    assert preflight.status_code >= 400
    assert not any(name.startswith("access-control-") for name in preflight.headers)


def _post_path(port: int, path: str, content_length: int, content_type: str) -> tuple[int, dict[str, str]]:
    """Declare a huge body but send only a little: a limited endpoint answers 413 before reading it."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + b"x" * 1024)
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = sock.recv(65536)
            if not chunk:
                break
            raw += chunk
        head_text, _, _body = raw.partition(b"\r\n\r\n")
        lines = head_text.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        return int(lines[0].split(" ")[1]), {k.lower(): v for k, v in headers.items()}


def test_every_post_body_has_a_size_limit(client: httpx.Client, gateway) -> None:
    """Every operation that takes a body (from the live OpenAPI schema) refuses 300 MB up front."""
    schema = client.get("/openapi.json").json()
    posts = [path for path, ops in schema["paths"].items() if "post" in ops]
    assert {"/predict", "/predict/batch"} <= set(posts)
    for path in posts:
        status, headers = _post_path(
            gateway.settings.port, path, 300 * MIB, "multipart/form-data; boundary=x"
        )
        assert status == 413, (path, status)
        assert headers.get("content-type") == "application/json", path
    assert client.get("/health/ready").status_code == 200


def _chunked(total: int) -> Iterator[bytes]:
    yield b'{"request_id": "'
    block = b"a" * MIB
    for _ in range(total // MIB):
        yield block
    yield b'", "true_label": "cat"}'


def test_a_chunked_body_without_length_is_not_buffered(
    gateway_process: GatewayProcess, figures: Figures
) -> None:
    """No Content-Length to check up front: the limit must hold while the body streams in."""
    with httpx.Client(base_url=gateway_process.url, timeout=60) as http:
        http.post("/feedback", json={"request_id": "x", "true_label": "cat"})  # warm the JSON path
        with sampled_rss(gateway_process.process.pid) as rss:
            response = http.post(
                "/feedback", content=_chunked(40 * MIB), headers={"content-type": "application/json"}
            )
        print(f"40 MB chunked JSON to /feedback: {response.status_code}, {rss.describe()}")
        assert response.status_code == 413, response.text
        assert rss.growth < 20 * MIB, rss.describe()
        figures.row(
            "Memory (gateway process, RSS sampled every 5 ms)",
            "Peak RSS growth",
            ["load", "answer", "RSS before -> peak"],
            ["40 MB chunked JSON to /feedback", str(response.status_code), rss.describe()],
        )


def _gps_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "SecretCamMake"  # Make
    exif[0x010E] = "12 Secret Street"  # ImageDescription
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 2.52), 3: "W", 4: (0.0, 7.0, 39.0)}  # GPSInfo, 51.5007 N
    buf = io.BytesIO()
    Image.open(io.BytesIO(photo(21))).save(buf, "JPEG", exif=exif)
    return buf.getvalue()


@pytest.fixture
def debug_gateway(hardening_triton: TritonFixture, tmp_path) -> Iterator[GatewayProcess]:
    """The real process at its most talkative log level, with tracking on (it logs too)."""
    gateway = start_gateway_process(
        hardening_triton.grpc_url,
        tmp_path / "gateway.log",
        LOG_LEVEL="DEBUG",
        TRACKING_ENABLED="true",
        TRACKING_DB=str(tmp_path / "predictions.db"),
    )
    try:
        yield gateway
    finally:
        stop_gateway_process(gateway)


def test_no_exif_gps_or_image_bytes_in_the_logs(debug_gateway: GatewayProcess) -> None:
    data = _gps_jpeg()
    assert all(s.encode() in data for s in ("SecretCamMake", "12 Secret Street"))
    with httpx.Client(base_url=debug_gateway.url, timeout=30) as http:
        ok = http.post("/predict", files={"file": ("home.jpg", data)})
        assert ok.status_code == 200
        batch = http.post(
            "/predict/batch", files=[("files", ("a.jpg", data)), ("files", ("b.jpg", data[:900]))]
        )
        assert batch.status_code == 200
        bad = http.post("/predict", files={"file": ("cut.jpg", data[: len(data) // 2])})
        assert bad.status_code == 422
    stop_gateway_process(debug_gateway)
    log = debug_gateway.log_file.read_text(errors="replace")
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    names = {event.get("event") for event in events}
    assert {"prediction_completed", "prediction_failed"} <= names, names
    lowered = log.lower()
    for secret in SECRETS:
        assert secret.lower() not in lowered, secret
    assert data[2:40].hex() not in log and repr(data[:40])[2:-1] not in log  # no image bytes, raw or hex
