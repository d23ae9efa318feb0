"""Triton goes away and comes back: the gateway says so (503) and recovers without a restart."""

from __future__ import annotations

import time

import httpx
import pytest
from gateway_helpers import photo, wait_ready

pytestmark = [pytest.mark.triton, pytest.mark.slow]


def test_triton_stopped_then_restarted(triton, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    data = photo(7)
    before = client.post("/predict", files={"file": ("a.jpg", data)}).json()

    triton.launcher.stop()
    try:
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.headers["retry-after"] == "1"
        assert ready.json()["error"] == "not_ready"
        response = client.post("/predict", files={"file": ("a.jpg", data)})
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"] == "model_unavailable"
        assert client.get("/health").json()["triton"]["live"] is False
        assert client.get("/health/live").status_code == 200  # the process itself is fine
    finally:
        triton.launcher.start()

    started = time.monotonic()
    wait_ready(client, timeout_s=60)
    after = client.post("/predict", files={"file": ("a.jpg", data)})
    assert after.status_code == 200, after.text
    assert after.json()["probabilities"] == pytest.approx(before["probabilities"], abs=1e-6)
    assert time.monotonic() - started < 60
