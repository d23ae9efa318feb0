"""The gateway against the real Triton: predictions, batch, metrics, bad input (never a 5xx)."""

from __future__ import annotations

import io
import json
import zlib

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support.photos import photo
from tests.support.triton import IMAGE_SIZE, MAX_BATCH

pytestmark = [pytest.mark.triton, pytest.mark.slow]


def post_file(client: httpx.Client, data: bytes, name: str = "photo.jpg") -> httpx.Response:
    return client.post("/predict", files={"file": (name, data, "application/octet-stream")})


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
def test_predict_every_supported_format(client: httpx.Client, fmt: str) -> None:
    response = post_file(client, photo(1, fmt=fmt), f"photo.{fmt.lower()}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {
        "predicted_class",
        "predicted_label",
        "confidence",
        "probabilities",
        "processing_time_ms",
        "model_version",
        "request_id",
        "uncertain",
    }
    assert list(body["probabilities"]) == ["cat", "dog"]  # labels came from the model's config
    assert body["predicted_class"] == ["cat", "dog"][body["predicted_label"]]
    assert body["confidence"] == pytest.approx(max(body["probabilities"].values()))
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert body["model_version"] == "1"
    assert body["uncertain"] == (body["confidence"] < 0.6)
    assert response.headers["x-request-id"] == body["request_id"]
    assert response.headers["X-Cache"] == "miss"  # decoded and inferred, not an earlier answer


def test_the_callers_request_id_is_a_correlation_field_only(client: httpx.Client) -> None:
    """The prediction's id is the gateway's (it keys the log and /feedback); X-Request-ID is echoed."""
    response = client.post(
        "/predict", files={"file": ("a.jpg", photo(2), "image/jpeg")}, headers={"X-Request-ID": "abc-123"}
    )
    body = response.json()
    assert body["client_request_id"] == "abc-123"
    assert response.headers["x-client-request-id"] == "abc-123"
    assert body["request_id"] != "abc-123" and response.headers["x-request-id"] == body["request_id"]


def test_batch_is_one_request_and_a_bad_file_fails_only_its_item(client: httpx.Client) -> None:
    good = [photo(300 + i) for i in range(3)]  # sent nowhere else: the singles below are cache misses
    files = [("files", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(good)]
    files.insert(1, ("files", ("notes.txt", b"not an image at all", "text/plain")))
    response = client.post("/predict/batch", files=files)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert results[1]["error"] == "unsupported_format" and results[1]["status"] == 415
    answers = [post_file(client, data) for data in good]
    assert [a.headers["X-Cache"] for a in answers] == ["miss"] * 3
    singles = [a.json() for a in answers]
    for batch_item, single in zip([results[0], results[2], results[3]], singles, strict=True):
        assert batch_item["predicted_class"] == single["predicted_class"]
        for name in ("cat", "dog"):
            assert batch_item["probabilities"][name] == pytest.approx(single["probabilities"][name], abs=1e-5)


def test_batch_larger_than_the_model_allows_is_refused(client: httpx.Client) -> None:
    files = [("files", (f"{i}.jpg", photo(i), "image/jpeg")) for i in range(MAX_BATCH + 1)]
    response = client.post("/predict/batch", files=files)
    assert response.status_code == 413
    assert response.json()["error"] == "too_many_files"


def _truncated_jpeg() -> bytes:
    data = photo(5, size=(640, 480))
    return data[: len(data) // 2]


def _bomb_png() -> bytes:
    """A tiny PNG whose header claims 5000×5000 pixels (25 MP > the test cap of 4 MP)."""
    width = height = 5000

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")
        )

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    row = b"\x00" + b"\x00" * width
    idat = zlib.compress(row * height, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("case", "status", "error"),
    [
        ("no_file_field", 422, "missing_file"),
        ("broken_multipart", 400, "bad_request"),
        ("empty_body", 422, "missing_file"),
        ("empty_file", 400, "empty"),
        ("not_an_image", 415, "unsupported_format"),
        ("truncated_jpeg", 422, "corrupt"),
        ("huge_upload", 413, "too_large"),
        ("bomb_png", 413, "too_many_pixels"),
    ],
)
def test_bad_input_is_a_4xx_and_the_gateway_keeps_serving(
    client: httpx.Client, case: str, status: int, error: str
) -> None:
    if case == "no_file_field":
        response = client.post("/predict", data={"other": "x"}, files={"picture": ("a.jpg", photo(1))})
    elif case == "broken_multipart":
        response = client.post(
            "/predict", content=b"garbage", headers={"Content-Type": "multipart/form-data; boundary=x"}
        )
    elif case == "empty_body":
        response = client.post("/predict")
    elif case == "empty_file":
        response = post_file(client, b"")
    elif case == "not_an_image":
        response = post_file(client, b"%PDF-1.7 definitely a document", "cat.jpg")
    elif case == "truncated_jpeg":
        response = post_file(client, _truncated_jpeg())
    elif case == "huge_upload":
        response = post_file(client, b"\xff\xd8\xff" + b"\0" * (3 * 1024 * 1024))
    else:
        bomb = _bomb_png()
        assert len(bomb) < 100_000
        response = post_file(client, bomb, "bomb.png")
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert set(body) == {"error", "detail"}
    assert "Traceback" not in response.text and 'File "' not in response.text
    # A photo of its own per case: a cached answer would not show that the gateway still classifies.
    after = post_file(client, photo(zlib.crc32(case.encode())))
    assert after.status_code == 200 and after.headers["X-Cache"] == "miss", after.text


def test_metrics_expose_the_contracted_names(client: httpx.Client) -> None:
    post_file(client, photo(11))
    post_file(client, b"garbage")
    client.get("/health/live")
    text = client.get("/metrics").text
    for name in (
        "prediction_requests_total",
        "prediction_latency_seconds_bucket",
        "health_check_requests_total",
        "prediction_errors_total",
        "stage_duration_seconds_bucket",
        "prediction_requests_in_flight",
        "prediction_confidence_bucket",
        "prediction_input_bytes_bucket",
        "model_info",
    ):
        assert name in text, name
    assert 'prediction_errors_total{error_type="unsupported_format"}' in text
    for stage in ("decode", "infer", "total"):
        assert f'stage_duration_seconds_count{{stage="{stage}"}}' in text
    assert 'model_info{model_name="cats_dogs",model_version="1"} 1.0' in text
    classes = [line for line in text.splitlines() if line.startswith("prediction_requests_total{")]
    assert classes and all('predicted_class="cat"' in c or 'predicted_class="dog"' in c for c in classes)


def test_health_endpoints_describe_model_and_triton(client: httpx.Client) -> None:
    assert client.get("/health/live").json() == {"status": "alive"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["model_version"] == "1"
    detail = client.get("/health").json()
    assert detail["ready"] is True
    assert detail["model"]["input"] == {
        "name": "image",
        "datatype": "UINT8",
        "shape": [-1, IMAGE_SIZE, IMAGE_SIZE, 3],
    }
    assert detail["model"]["max_batch_size"] == MAX_BATCH
    assert detail["model"]["parameters"]["mlflow_model_name"] == "test-fixture"
    assert detail["triton"]["live"] is True


def test_root_is_json_for_apis_and_a_page_for_browsers(client: httpx.Client) -> None:
    body = client.get("/", headers={"Accept": "application/json"}).json()
    assert "POST /predict" in body["endpoints"]
    assert body["model"]["class_names"] == ["cat", "dog"]
    page = client.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.headers["content-type"].startswith("text/html")
    assert 'type="file"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN, nothing external


def test_http_protocol_gives_the_same_answer(triton, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    from tests.support.gateway import GatewayServer, gateway_settings, wait_ready

    data = photo(21)
    expected = post_file(client, data).json()
    settings = gateway_settings(triton.http_url, triton_protocol="http")
    with GatewayServer(settings) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        wait_ready(http)
        response = post_file(http, data)
        assert response.headers["X-Cache"] == "miss"  # its own cache is empty: answered over HTTP
        got = response.json()
    assert got["predicted_class"] == expected["predicted_class"]
    assert got["probabilities"]["cat"] == pytest.approx(expected["probabilities"]["cat"], abs=1e-6)


def test_uploads_above_the_pixel_cap_are_refused_before_decoding(client: httpx.Client) -> None:
    big = np.zeros((2100, 2100, 3), dtype=np.uint8)  # 4.41 MP > the 4 MP test cap
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, "JPEG", quality=50)
    response = post_file(client, buf.getvalue())
    assert response.status_code == 413 and response.json()["error"] == "too_many_pixels"
    assert json.loads(response.text)["detail"].endswith("pixels")
