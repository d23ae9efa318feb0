"""Hostile uploads against the real gateway + Triton: a 4xx with a JSON {error, detail} body or a 200
for a valid image, never a 5xx, the gateway still serving afterwards, and its memory bounded."""

from __future__ import annotations

import contextlib
import itertools
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.hardening.corpus import Case, cases
from tests.hardening.hardening_helpers import GatewayProcess
from tests.hardening.memory import sampled_rss
from tests.hardening.results import Figures
from tests.support.gateway import GatewayServer
from tests.support.photos import photo
from tests.support.triton import MAX_BATCH, TritonFixture, triton_counts

pytestmark = [pytest.mark.triton, pytest.mark.slow]

CASES = cases()
MIB = 1024 * 1024


def assert_json_error(response: httpx.Response, error: str | None = None) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["detail"], str) and body["detail"]
    if error is not None:
        assert body["error"] == error, body


_FRESH_SEEDS = itertools.count(60_000)


def fresh_photo() -> bytes:
    """A good photo this session has never sent: its answer cannot come from the response cache."""
    return photo(next(_FRESH_SEEDS))


def assert_still_serving(client: httpx.Client, hardening_triton: TritonFixture) -> None:
    assert client.get("/health/ready").status_code == 200
    before = triton_counts(hardening_triton.http_url).inferences
    response = client.post("/predict", files={"file": ("ok.jpg", fresh_photo())})
    assert response.status_code == 200, response.text
    assert response.headers.get("X-Cache") != "hit"
    assert triton_counts(hardening_triton.http_url).inferences == before + 1  # Triton answered, not a cache


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_hostile_file_gets_its_answer(
    client: httpx.Client, hardening_triton: TritonFixture, case: Case
) -> None:
    response = client.post("/predict", files={"file": (case.filename, case.data, "image/jpeg")})
    assert response.status_code in case.expected, (response.status_code, response.text)
    if response.status_code == 200:
        assert response.json()["predicted_class"] in {"cat", "dog"}
    else:
        assert_json_error(response, case.error)
    assert_still_serving(client, hardening_triton)


def test_the_corpus_as_batch_items_fails_only_the_bad_items(client: httpx.Client) -> None:
    for start in range(0, len(CASES), MAX_BATCH):
        chunk = CASES[start : start + MAX_BATCH]
        files = [("files", (c.filename, c.data, "application/octet-stream")) for c in chunk]
        response = client.post("/predict/batch", files=files)
        assert response.status_code == 200, response.text
        for case, item in zip(chunk, response.json()["results"], strict=True):
            status = item.get("status", 200)
            assert status in case.expected, (case.name, item)


def test_no_file_field_is_a_422(client: httpx.Client) -> None:
    response = client.post("/predict", files={"image": ("a.jpg", photo(1))})
    assert_json_error(response, "missing_file")
    assert response.status_code == 422
    response = client.post("/predict", data={"note": "no file here"})
    assert response.status_code == 422
    assert_json_error(response, "missing_file")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("image/jpeg", photo(1)),  # the raw bytes, not multipart
        ("application/json", b'{"file": "aGVsbG8="}'),
        ("text/plain", b"file=cat.jpg"),
        ("application/x-www-form-urlencoded", b"file=cat.jpg"),
        ("multipart/form-data", photo(1)),  # no boundary
        ("multipart/form-data; boundary=xyz", photo(1)),  # a boundary that never appears
        (
            "multipart/form-data; boundary=xyz",
            b"--xyz\r\nContent-Disposition: form-data\r\n\r\nx",
        ),  # unterminated
    ],
    ids=[
        "raw_jpeg",
        "json",
        "text",
        "urlencoded",
        "multipart_no_boundary",
        "boundary_absent",
        "unterminated",
    ],
)
def test_wrong_content_types_are_4xx_json(
    client: httpx.Client, hardening_triton: TritonFixture, content_type: str, body: bytes
) -> None:
    response = client.post("/predict", content=body, headers={"content-type": content_type})
    assert_json_error(response)
    assert_still_serving(client, hardening_triton)


def test_several_files_on_predict_are_refused(client: httpx.Client, hardening_triton: TritonFixture) -> None:
    """The documented choice: several `file` parts on /predict are a 422 (FastAPI alone would silently
    classify the last one); /predict/batch is the endpoint for several photos."""
    good, bad = photo(11), b"not an image at all"
    for parts in ([good, bad], [bad, good], [good, good]):
        files = [("file", (f"{i}.jpg", data)) for i, data in enumerate(parts)]
        response = client.post("/predict", files=files)
        assert response.status_code == 422, response.text
        assert_json_error(response, "multiple_files")
    assert_still_serving(client, hardening_triton)


def _raw_request(port: int, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        # The server may answer and close before it has read everything.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head + body)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0
    return status, raw


def test_huge_multipart_part_headers_are_4xx(
    client: httpx.Client, hardening_triton: TritonFixture, gateway: GatewayServer
) -> None:
    port = gateway.settings.port
    boundary = "b0und"
    for name, part_head in [
        ("huge_filename", f'Content-Disposition: form-data; name="file"; filename="{"A" * 2 * MIB}.jpg"\r\n'),
        (
            "many_headers",
            'Content-Disposition: form-data; name="file"; filename="a.jpg"\r\n' + "X-Pad: 1\r\n" * 50_000,
        ),
    ]:
        body = f"--{boundary}\r\n{part_head}\r\n".encode() + photo(1) + f"\r\n--{boundary}--\r\n".encode()
        head = (
            f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nConnection: close\r\n\r\n"
        ).encode()
        status, raw = _raw_request(port, head, body)
        assert 400 <= status < 500, (name, raw[:300])
        assert b'"error"' in raw, (name, raw[:300])
    assert_still_serving(client, hardening_triton)


def _huge_head(megabytes: int) -> bytes:
    return (
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
        + "".join(f"X-Pad-{i}: {'v' * 1000}\r\n" for i in range(1024 * megabytes))
        + "Connection: close\r\n\r\n"
    ).encode()


def test_huge_http_headers_get_a_4xx(
    client: httpx.Client, hardening_triton: TritonFixture, gateway: GatewayServer
) -> None:
    """1 MB of request headers: a JSON 431 from the connection layer (gateway/server.py)."""
    status, raw = _raw_request(gateway.settings.port, _huge_head(1))
    assert status in (431, 0), raw[:300]
    if status:
        assert b'"headers_too_large"' in raw
    assert_still_serving(client, hardening_triton)


def test_huge_http_headers_do_not_grow_memory(gateway_process: GatewayProcess, figures: Figures) -> None:
    """32 MB of request headers: h11 refuses the head past MAX_HEADER_BYTES (was a strict xfail while the
    gateway ran httptools, which has no header limit: +37 MiB)."""
    with sampled_rss(gateway_process.process.pid) as rss:
        status, _ = _raw_request(int(gateway_process.url.rsplit(":", 1)[1]), _huge_head(32))
    print(f"32 MB of request headers: {status}, {rss.describe()}")
    assert status in (431, 0), status  # 0: reset before the client read the 431
    assert rss.growth < 16 * MIB, rss.describe()
    figures.row(
        "Memory (gateway process, RSS sampled every 5 ms)",
        "Peak RSS growth",
        ["load", "answer", "RSS before -> peak"],
        ["32 MB of request headers", str(status or "reset"), rss.describe()],
    )


def _chunked_multipart(total: int, boundary: str) -> Iterator[bytes]:
    yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n\r\n'.encode()
    yield photo(1)
    block = b"\x00" * MIB
    sent = 0
    while sent < total:
        yield block
        sent += len(block)
    yield f"\r\n--{boundary}--\r\n".encode()


@pytest.mark.parametrize("framing", ["content_length", "chunked"])
def test_a_50mb_upload_is_413_without_buffering(gateway_process, framing: str, figures: Figures) -> None:
    """Limit 2 MiB. With a Content-Length the middleware refuses before reading; chunked, the multipart
    parser spools to disk and the handler reads only limit + 1 bytes. Either way the peak RSS of the
    gateway process must stay far below the 50 MB sent."""
    size = 50 * 1024 * 1024
    with httpx.Client(base_url=gateway_process.url, timeout=60) as http:
        for _ in range(3):  # warm: the first requests allocate the decode pool and gRPC buffers
            assert http.post("/predict", files={"file": ("a.jpg", fresh_photo())}).status_code == 200
        with sampled_rss(gateway_process.process.pid) as rss:
            if framing == "content_length":
                response = http.post("/predict", files={"file": ("big.jpg", photo(1) + b"\x00" * size)})
            else:
                boundary = "bigboundary"
                response = http.post(
                    "/predict",
                    content=_chunked_multipart(size, boundary),
                    headers={"content-type": f"multipart/form-data; boundary={boundary}"},
                )
        assert response.status_code == 413, response.text
        assert response.json()["error"] == "too_large"
        print(f"50 MB upload ({framing}): 413, {rss.describe()}")
        assert rss.growth < 20 * MIB, rss.describe()
        figures.row(
            "Memory (gateway process, RSS sampled every 5 ms)",
            "Peak RSS growth",
            ["load", "answer", "RSS before -> peak"],
            [f"50 MB upload ({framing.replace('_', '-')})", "413", rss.describe()],
        )
        after = http.post("/predict", files={"file": ("a.jpg", fresh_photo())})
        assert after.status_code == 200 and after.headers.get("X-Cache") != "hit", after.text


def test_the_corpus_leaves_gateway_memory_bounded(gateway_process, figures: Figures) -> None:
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=gateway_process.url, timeout=60) as http:
        for _ in range(5):
            assert http.post("/predict", files={"file": ("a.jpg", fresh_photo())}).status_code == 200
        with sampled_rss(gateway_process.process.pid) as rss:
            for _ in range(5):
                for case in CASES:
                    # no-cache: every round decodes the valid cases again, or rounds 2-5 leak-test a cache.
                    response = http.post(
                        "/predict",
                        files={"file": (case.filename, case.data)},
                        headers={"Cache-Control": "no-cache"},
                    )
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    assert response.status_code in case.expected, (case.name, response.text)
        print(f"corpus x5 ({len(CASES) * 5} requests) statuses {sorted(statuses.items())}: {rss.describe()}")
        assert not any(status >= 500 for status in statuses)
        assert rss.growth < 64 * MIB, rss.describe()
        figures.row(
            "Memory (gateway process, RSS sampled every 5 ms)",
            "Peak RSS growth",
            ["load", "answer", "RSS before -> peak"],
            [
                f"the corpus 5 times ({len(CASES) * 5} requests)",
                str(sorted(statuses.items())),
                rss.describe(),
            ],
        )
        assert gateway_process.alive()
