"""The bytes of /predict and /predict/batch answers are pinned: same photo, same model, same JSON.

A fresh gateway (its own prediction log and response cache) in front of the session's Triton answers
a fixed script of requests: predictions (cache miss, hit and bypass), a batch with a bad file, and the
error answers of bad uploads. Each answer is written as its status line, headers and raw body; only
what changes per request is replaced by a placeholder (the gateway's request id, the processing time,
and the Content-Length that follows from it), after checking it has its usual form. The transcript must
equal tests/gateway/golden/predict_answers.txt to the byte: a renamed or reordered field, a float
written differently, a header or status changed all fail here.

The probabilities are the seeded tiny model's (tests/support/triton.py) as ONNX Runtime on
this CPU computes them. After an intended change of the answers (or on a CPU whose kernels round
differently), rewrite the file and review its diff:
``GOLDEN_UPDATE=1 pytest tests/gateway/test_gateway_golden.py``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import GatewayServer, gateway_settings, wait_ready
from tests.support.photos import photo
from tests.support.triton import MAX_BATCH

pytestmark = [pytest.mark.triton, pytest.mark.slow]

GOLDEN = Path(__file__).parent / "golden" / "predict_answers.txt"
UPLOAD_CAP = 2 * 1024 * 1024  # gateway_settings' max_upload_bytes
# Set by the HTTP server, not by the gateway's routes.
SERVER_HEADERS = {"date", "server"}

_REQUEST_ID = re.compile(r"\b[0-9a-f]{32}\b")
# round(elapsed * 1000, 2): digits, at most two decimals.
_PROCESSING_TIME = re.compile(r'"processing_time_ms":(\d+(?:\.\d{1,2})?)(?=[,}])')

Files = list[tuple[str, tuple[str, bytes, str]]]


def jpeg(seed: int, name: str = "photo.jpg") -> tuple[str, bytes, str]:
    return (name, photo(seed), "image/jpeg")


# (name, path, multipart files, extra headers); run in this order against one fresh gateway.
SCRIPT: list[tuple[str, str, Files, dict[str, str]]] = [
    ("predict, cache miss", "/predict", [("file", jpeg(8101))], {"X-Request-ID": "golden-client"}),
    ("predict, same photo: cache hit", "/predict", [("file", jpeg(8101))], {}),
    ("predict, no-cache: bypass", "/predict", [("file", jpeg(8101))], {"Cache-Control": "no-cache"}),
    ("predict, PNG", "/predict", [("file", ("b.png", photo(8102, fmt="PNG"), "image/png"))], {}),
    (
        "batch, one bad file among photos",
        "/predict/batch",
        [
            ("files", jpeg(8103, "a.jpg")),
            ("files", ("notes.txt", b"not an image at all", "text/plain")),
            ("files", ("c.png", photo(8104, fmt="PNG"), "image/png")),
        ],
        {"X-Request-ID": "golden-batch"},
    ),
    ("batch, every file bad", "/predict/batch", [("files", ("e.bin", b"", "image/jpeg"))], {}),
    ("predict, not an image", "/predict", [("file", ("x.txt", b"plain text", "text/plain"))], {}),
    ("predict, empty file", "/predict", [("file", ("x.jpg", b"", "image/jpeg"))], {}),
    (
        "predict, one byte over the upload cap",
        "/predict",
        [("file", ("big.jpg", b"\xff" * (UPLOAD_CAP + 1), "image/jpeg"))],
        {},
    ),
    ("predict, two files", "/predict", [("file", jpeg(8101)), ("file", jpeg(8102))], {}),
    ("predict, no file field", "/predict", [("picture", jpeg(8101))], {}),
    ("batch, no files", "/predict/batch", [("file", jpeg(8101))], {}),
    (
        "batch, over the model's batch limit",
        "/predict/batch",
        [("files", jpeg(8101, f"{i}.jpg")) for i in range(MAX_BATCH + 1)],
        {},
    ),
]


@pytest.fixture(scope="module")
def fresh_client(triton: Any) -> Iterator[httpx.Client]:
    """A gateway of its own: an empty response cache, so the script's first answer is a miss."""
    with (
        GatewayServer(gateway_settings(triton.grpc_url)) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        wait_ready(http)
        yield http


def _normalised(text: str) -> str:
    text = _REQUEST_ID.sub("<request_id>", text)
    return _PROCESSING_TIME.sub('"processing_time_ms":<ms>', text)


def transcript_of(name: str, path: str, response: httpx.Response) -> str:
    body = response.content
    lines = [f"### {name}", f"POST {path}", f"HTTP {response.status_code}"]
    for key, value in response.headers.multi_items():
        if key in SERVER_HEADERS:
            continue
        if key == "content-length":
            assert int(value) == len(body)
            value = "<length>"
        lines.append(f"{key}: {value}")
    return _normalised("\n".join(lines)) + "\n\n" + _normalised(body.decode("utf-8")) + "\n\n"


def test_answers_are_byte_for_byte_the_golden_ones(fresh_client: httpx.Client) -> None:
    transcript = ""
    for name, path, files, headers in SCRIPT:
        response = fresh_client.post(path, files=files, headers=headers)
        transcript += transcript_of(name, path, response)
    if os.environ.get("GOLDEN_UPDATE") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(transcript, encoding="utf-8")
    golden = GOLDEN.read_text(encoding="utf-8")
    if transcript != golden:
        diff = "".join(
            difflib.unified_diff(
                golden.splitlines(keepends=True),
                transcript.splitlines(keepends=True),
                "golden",
                "answered",
            )
        )
        pytest.fail(f"the answers differ from {GOLDEN.name}:\n{diff}")
