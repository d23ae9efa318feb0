"""TRITON_URL forms, TRACKING_DATABASE_URL and DRAIN_TIMEOUT_S: parsed, or refused with a clear reason."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from gateway.settings import Settings
from tritonlink import channel_args, parse_target


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("127.0.0.1:8001", "127.0.0.1:8001"),
        ("grpc://triton:8001/", "triton:8001"),
        ("127.0.0.1:8001,127.0.0.1:8002", "ipv4:127.0.0.1:8001,127.0.0.1:8002"),
        ("localhost:8001, 127.0.0.1:8002", "ipv4:127.0.0.1:8001,127.0.0.1:8002"),
        ("dns:///triton-headless:8001", "dns:///triton-headless:8001"),
        ("[::1]:8001,[::1]:8002", "ipv6:[::1]:8001,[::1]:8002"),
    ],
)
def test_triton_url_forms(url: str, target: str) -> None:
    assert parse_target(url).target == target


@pytest.mark.parametrize("url", ["triton", "a:b", "dns:///no-port", "h:1,nowhere.invalid:2", " , "])
def test_bad_triton_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"Triton|TRITON_URL|resolve"):
        parse_target(url)


def test_channel_balances_per_request() -> None:
    options = dict(channel_args())
    config = json.loads(str(options["grpc.service_config"]))
    policy = config["loadBalancingConfig"][0]["outlier_detection_experimental"]
    assert policy["childPolicy"] == [{"round_robin": {}}]
    assert options["grpc.lb_policy_name"] == "round_robin"


def test_gateway_settings_accept_lists_and_dns_for_grpc_only() -> None:
    listed = Settings(triton_url="127.0.0.1:1,127.0.0.1:2")
    assert listed.triton_url == "127.0.0.1:1,127.0.0.1:2"
    assert Settings(triton_url="dns:///triton-headless:8001").triton_url == "dns:///triton-headless:8001"
    with pytest.raises(ValidationError, match="TRITON_PROTOCOL=http"):
        Settings(triton_url="127.0.0.1:1,127.0.0.1:2", triton_protocol="http")


def test_database_url_and_drain_settings() -> None:
    assert Settings().tracking_database_url is None
    assert Settings(tracking_database_url="").tracking_database_url is None
    url = "postgresql://cd:secret@db:5432/predictions"
    settings = Settings(tracking_database_url=url, drain_timeout_s=5)
    assert settings.tracking_database_url is not None
    assert settings.tracking_database_url.get_secret_value() == url
    assert "secret" not in repr(settings)
    assert settings.drain_timeout_s == 5
    with pytest.raises(ValidationError, match="postgresql://") as refused:
        Settings(tracking_database_url="mysql://cd:hunter2@db/x")
    # What `python -m gateway` prints is the message, which must not echo the password.
    assert all("hunter2" not in error["msg"] for error in refused.value.errors())
    with pytest.raises(ValidationError):
        Settings(drain_timeout_s=-1)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("StatusCode.CANCELLED", "Received RST_STREAM with error code 8"),
        (
            "StatusCode.INTERNAL",
            "Failed to process the request(s): Stub process 'cats_dogs_0' is not healthy.",
        ),
        ("StatusCode.INTERNAL", "Socket closed"),
        ("StatusCode.UNAVAILABLE", "Request for unknown model: 'cats_dogs' is not found"),
    ],
)
def test_shutdown_statuses_are_unavailable(status: str, message: str) -> None:
    """What a Triton that is shutting down can answer → 503 + Retry-After (retried elsewhere), not 502."""
    from tritonclient.utils import InferenceServerException

    from gateway.triton_backend import classify_exception

    assert classify_exception(InferenceServerException(msg=message, status=status)).kind == "unavailable"
    still_a_model_error = InferenceServerException(
        msg="onnxruntime: invalid input", status="StatusCode.INTERNAL"
    )
    assert classify_exception(still_a_model_error).kind == "model_error"
