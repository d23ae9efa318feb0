"""The OpenAPI document describes what the gateway really answers, and /docs works offline.

Real answers of the real stack (Triton + gateway) are validated against /openapi.json: every status
a request gets must be declared on its operation, with a schema its body satisfies. The fuzz tests
(tests/hardening/test_fuzz.py) do the same on generated requests; here each success and error path
is reached on purpose, since random bytes rarely make a 200. The exact keys (and their order, which
is what makes the bytes) of /predict and /predict/batch are pinned as well: the response models
only describe the answer and must never reshape it.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema
import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.gateway import GatewayServer
from tests.support.photos import photo

pytestmark = [pytest.mark.triton, pytest.mark.slow]

PREDICTION_KEYS = [
    "predicted_class",
    "predicted_label",
    "confidence",
    "probabilities",
    "uncertain",
    "processing_time_ms",
    "model_version",
    "request_id",
]
BATCH_KEYS = ["results", "model_version", "request_id", "processing_time_ms"]
BATCH_ITEM_KEYS = [
    "index",
    "filename",
    "predicted_class",
    "predicted_label",
    "confidence",
    "probabilities",
    "uncertain",
    "request_id",
]
BATCH_ERROR_KEYS = ["index", "filename", "error", "detail", "status"]


@pytest.fixture(scope="module")
def document(gateway: GatewayServer) -> dict[str, Any]:
    return dict(httpx.get(gateway.url + "/openapi.json", timeout=30).json())


def conforms(document: dict[str, Any], method: str, path: str, response: httpx.Response) -> None:
    """``response`` is declared on METHOD path: its status, its content type, and (JSON) its schema."""
    operation = document["paths"][path][method.lower()]
    declared = operation["responses"]
    status = str(response.status_code)
    assert status in declared, f"{method} {path} answered {status}, not declared (only {sorted(declared)})"
    content = declared[status].get("content", {})
    media = response.headers["content-type"].split(";")[0].strip()
    matches = [m for m in content if m.split(";")[0].strip() == media]
    assert matches, f"{method} {path} {status} answered {media}, declared {sorted(content)}"
    schema = content[matches[0]].get("schema")
    if media == "application/json" and schema is not None:
        # Component refs ("#/components/schemas/X") resolve against the whole document.
        jsonschema.Draft202012Validator(
            {**schema, "components": document["components"]},
            format_checker=jsonschema.FormatChecker(),
        ).validate(response.json())


def test_predict_answer_keys_are_pinned_and_documented(
    client: httpx.Client, document: dict[str, Any]
) -> None:
    response = client.post(
        "/predict",
        files={"file": ("a.jpg", photo(7001), "image/jpeg")},
        headers={"Cache-Control": "no-cache"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == PREDICTION_KEYS
    assert list(body["probabilities"]) == ["cat", "dog"]
    assert isinstance(body["predicted_label"], int) and isinstance(body["uncertain"], bool)
    assert isinstance(body["model_version"], str)
    conforms(document, "POST", "/predict", response)


def test_batch_answer_keys_are_pinned_and_documented(client: httpx.Client, document: dict[str, Any]) -> None:
    files = [
        ("files", ("a.jpg", photo(7002), "image/jpeg")),
        ("files", ("notes.txt", b"not an image", "text/plain")),
    ]
    response = client.post("/predict/batch", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == BATCH_KEYS
    assert list(body["results"][0]) == BATCH_ITEM_KEYS
    assert list(body["results"][1]) == BATCH_ERROR_KEYS
    conforms(document, "POST", "/predict/batch", response)


def test_every_get_is_documented(client: httpx.Client, document: dict[str, Any]) -> None:
    for path in ("/health/live", "/health/ready", "/health", "/metrics", "/", "/stats"):
        conforms(document, "GET", path, client.get(path))
    conforms(document, "GET", "/", client.get("/", headers={"Accept": "text/html"}))
    conforms(document, "GET", "/stats", client.get("/stats", params={"window": "all"}))
    conforms(document, "GET", "/stats", client.get("/stats", params={"window": "soon"}))


def test_root_lists_every_documented_endpoint(client: httpx.Client, document: dict[str, Any]) -> None:
    listed = set(client.get("/").json()["endpoints"])
    for path, operations in document["paths"].items():
        for method in operations:
            if method == "head":
                continue  # HEAD mirrors GET on the health endpoints (load-balancer probes)
            assert f"{method.upper()} {path}" in listed, f"GET / does not list {method.upper()} {path}"
    assert {"GET /docs", "GET /openapi.json"} <= listed


def test_feedback_answers_are_documented(client: httpx.Client, document: dict[str, Any]) -> None:
    predicted = client.post(
        "/predict",
        files={"file": ("b.jpg", photo(7003), "image/jpeg")},
        headers={"Cache-Control": "no-cache"},
    ).json()
    item = {"request_id": predicted["request_id"], "true_label": "cat"}
    first = client.post("/feedback", json=item)
    assert first.status_code == 201, first.text
    conforms(document, "POST", "/feedback", first)
    again = client.post("/feedback", json=item)
    assert again.status_code == 200
    conforms(document, "POST", "/feedback", again)
    for body, status in [
        (item | {"true_label": "dog"}, 409),
        ({"request_id": uuid.uuid4().hex, "true_label": "cat"}, 404),
        (item | {"true_label": "horse"}, 422),
        ({"request_id": "x"}, 422),
    ]:
        response = client.post("/feedback", json=body)
        assert response.status_code == status, response.text
        conforms(document, "POST", "/feedback", response)
    conforms(document, "GET", "/stats", client.get("/stats", params={"window": "all"}))


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", 400),
        (b"GIF89a" + b"\x00" * 40, 422),
        (b"plain text, not an image", 415),
        (b"\xff" * (2 * 1024 * 1024 + 1), 413),
    ],
)
def test_predict_errors_are_documented(
    client: httpx.Client, document: dict[str, Any], data: bytes, status: int
) -> None:
    response = client.post("/predict", files={"file": ("x.bin", data, "application/octet-stream")})
    assert response.status_code == status, response.text
    conforms(document, "POST", "/predict", response)


def test_missing_file_is_documented_as_the_gateways_error_not_fastapis(
    client: httpx.Client, document: dict[str, Any]
) -> None:
    response = client.post("/predict", data={"other": "field"})
    assert response.json()["error"] == "missing_file"
    conforms(document, "POST", "/predict", response)
    schema = document["paths"]["/predict"]["post"]["responses"]["422"]["content"]["application/json"]
    assert schema["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_every_operation_has_examples(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, declared in operation["responses"].items():
                for media, content in declared.get("content", {}).items():
                    if media == "application/json":
                        assert "example" in content, f"{method.upper()} {path} {status}: no example"


def test_docs_render_offline_in_chromium(gateway: GatewayServer, document: dict[str, Any]) -> None:
    """The page renders every operation with each request outside the gateway blocked (and recorded)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (PyPI) is not installed")
    own = urlsplit(gateway.url).netloc
    external: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()

            def only_the_gateway(route: Any) -> None:
                url = route.request.url
                if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).netloc == own:
                    route.continue_()
                else:
                    external.append(url)
                    route.abort()

            page.route("**/*", only_the_gateway)
            page.goto(gateway.url + "/docs")
            page.locator(".opblock").first.wait_for(timeout=30_000)
            text = page.locator("body").inner_text()
            for path in document["paths"]:
                assert path in text, f"/docs does not show {path}"
        finally:
            browser.close()
    assert external == [], f"/docs tried to reach outside the gateway: {external}"
