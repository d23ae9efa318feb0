"""Settings: defaults, environment overrides, and bad values refused with the variable named."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from gateway.settings import Settings


def test_defaults_point_at_local_triton_grpc() -> None:
    settings = Settings()
    assert settings.triton_url == "127.0.0.1:8001"
    assert settings.triton_protocol == "grpc"
    assert settings.model_name == "cats_dogs"
    assert settings.port == 8000
    assert settings.max_upload_bytes == 10 * 1024 * 1024


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_PROTOCOL", "HTTP")
    monkeypatch.setenv("MODEL_NAME", "pets")
    monkeypatch.setenv("PORT", "9100")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("UNCERTAIN_THRESHOLD", "0.75")
    settings = Settings()
    assert settings.triton_protocol == "http"
    assert settings.triton_url == "127.0.0.1:8010"  # the HTTP default when no URL is given
    assert (settings.model_name, settings.port, settings.log_level) == ("pets", 9100, "DEBUG")
    assert settings.uncertain_threshold == 0.75


def test_a_pasted_http_url_is_normalised() -> None:
    assert Settings(triton_url="http://triton:8000/", triton_protocol="http").triton_url == "triton:8000"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("triton_url", "no-port"),
        ("triton_url", "host:99999"),
        ("triton_protocol", "carrier-pigeon"),
        ("port", 0),
        ("uncertain_threshold", 1.5),
        ("max_in_flight", 0),
        ("request_timeout_s", 0),
        ("log_level", "chatty"),
        ("model_name", ""),
    ],
)
def test_bad_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        Settings(**{field: value})  # type: ignore[arg-type]


def test_the_entry_point_exits_with_a_clear_message_on_bad_settings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway"],
        env={"PORT": "not-a-port", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "PORT" in result.stderr and "invalid gateway settings" in result.stderr
    assert "Traceback" not in result.stderr
