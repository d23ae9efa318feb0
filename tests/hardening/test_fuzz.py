"""Fuzzing: hypothesis on the decoder and on /predict, schemathesis on the gateway's OpenAPI schema.

CI runs a few hundred cases; ``HARDENING_FUZZ_EXAMPLES`` (set by fuzz_main.py / ``make fuzz``) raises
the number of examples of every fuzz test.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Err

from imaging import DecodeLimits, ImageError, decode_image, load_for_model
from tests.support.gateway import GatewayServer
from tests.support.photos import photo

EXAMPLES = int(os.environ.get("HARDENING_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,  # CI runs are independent; a failure prints its reproducing example
)
LIMITS = DecodeLimits(max_bytes=2 * 1024 * 1024, max_pixels=4_000_000)


def _seeds() -> list[bytes]:
    rgb = Image.open(io.BytesIO(photo(1, size=(48, 36)))).convert("RGB")
    out = []
    for fmt, image in [
        ("JPEG", rgb),
        ("PNG", rgb),
        ("PNG", rgb.convert("RGBA")),
        ("GIF", rgb.quantize(32)),
        ("BMP", rgb),
        ("WEBP", rgb),
    ]:
        buf = io.BytesIO()
        image.save(buf, fmt)
        out.append(buf.getvalue())
    return out


SEEDS = _seeds()


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A valid image with bytes flipped, cut, duplicated or spliced in: deep into the parsers."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "overwrite"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        else:
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[at : at + len(chunk)] = chunk
    return bytes(data)


def _check_decode(data: bytes) -> None:
    try:
        decoded = decode_image(data, limits=LIMITS)
    except ImageError as exc:
        assert exc.kind in {
            "empty",
            "too_large",
            "too_many_pixels",
            "unsupported_format",
            "corrupt",
            "too_small",
        }
        return
    assert decoded.image.mode == "RGB"
    assert decoded.image.width >= 1 and decoded.image.height >= 1
    array = load_for_model(data, 16, limits=LIMITS)
    assert array.shape == (16, 16, 3) and array.dtype == np.uint8


@FUZZ
@given(st.binary(max_size=4096))
def test_decode_arbitrary_bytes(data: bytes) -> None:
    _check_decode(data)


@FUZZ
@given(st.sampled_from([s[:12] for s in SEEDS]), st.binary(max_size=2048))
def test_decode_a_valid_signature_then_anything(head: bytes, tail: bytes) -> None:
    _check_decode(head + tail)


@FUZZ
@given(mutated_images())
def test_decode_mutated_images(data: bytes) -> None:
    _check_decode(data)


_HEADER_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\'), max_size=80
)


@pytest.fixture(scope="module")
def fuzz_http(gateway: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        yield http


@pytest.mark.triton
@pytest.mark.slow
@FUZZ
@given(
    data=st.one_of(st.binary(max_size=2048), mutated_images()),
    filename=_HEADER_TEXT,
    content_type=st.one_of(
        st.sampled_from(["image/jpeg", "application/octet-stream", "text/html"]), _HEADER_TEXT
    ),
    field=st.sampled_from(["file", "file", "files", "image", ""]),
)
def test_predict_never_answers_5xx(
    fuzz_http: httpx.Client, data: bytes, filename: str, content_type: str, field: str
) -> None:
    try:
        response = fuzz_http.post("/predict", files={field: (filename, data, content_type)})
    except httpx.LocalProtocolError:
        return  # the client refused to send it: nothing reached the gateway
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert set(response.json()) == {"error", "detail"}


@pytest.fixture(scope="module")
def api_schema(gateway: GatewayServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")


# Besides "no 5xx": every status, content type and body the gateway answers is the one its OpenAPI
# document declares (gateway/schemas.py), so the document cannot drift from the code.
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _fuzz_operation(operation: schemathesis.APIOperation, calls: dict[str, int]) -> None:
    label = f"{operation.method.upper()} {operation.path}"

    @FUZZ
    @given(case=operation.as_strategy())
    def call(case: schemathesis.Case) -> None:
        calls[label] = calls.get(label, 0) + 1
        response = case.call(timeout=30)
        case.validate_response(response, checks=CONFORMANCE)

    call()


@pytest.mark.triton
@pytest.mark.slow
def test_openapi_operations_never_answer_5xx(api_schema: schemathesis.BaseSchema) -> None:
    """Every operation of /openapi.json with schemathesis-generated requests: no 5xx, and every answer
    conforms to the document (status declared, content type declared, body valid against its schema).

    Driven by hand (a hypothesis test per operation) because schemathesis 4.32's pytest
    parametrization fails on pytest 9 (``'Function' object has no attribute '_nodeid'``).
    """
    operations = []
    for result in api_schema.get_all_operations():
        if isinstance(result, Err):
            raise AssertionError(f"the gateway's schema has an invalid operation: {result.err()}")
        operations.append(result.ok())
    assert {op.path for op in operations} >= {"/predict", "/predict/batch", "/health"}
    calls: dict[str, int] = {}
    for operation in operations:
        _fuzz_operation(operation, calls)
    # Operations without parameters have few distinct requests; hypothesis stops when they are done.
    print(f"schemathesis: {sum(calls.values())} requests, zero 5xx, all conforming: {calls}")
