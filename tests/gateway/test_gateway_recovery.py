"""Triton goes away and comes back: the gateway says so (503) and recovers without a restart."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.gateway import wait_ready
from tests.support.photos import photo
from tests.support.triton import triton_counts

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
    reached = triton_counts(triton.http_url)
    # The photo's first answer is in the response cache (same model version, TTL 300 s): without
    # no-cache the gateway could answer it without the restarted Triton.
    after = client.post("/predict", files={"file": ("a.jpg", data)}, headers={"Cache-Control": "no-cache"})
    assert after.status_code == 200, after.text
    assert after.headers["X-Cache"] == "bypass"
    assert after.json()["probabilities"] == pytest.approx(before["probabilities"], abs=1e-6)
    # A photo never sent before takes the ordinary path: a cache miss, answered by Triton.
    fresh = client.post("/predict", files={"file": ("b.jpg", photo(7007))})
    assert fresh.status_code == 200, fresh.text
    assert fresh.headers["X-Cache"] == "miss"
    assert triton_counts(triton.http_url).inferences == reached.inferences + 2
    assert time.monotonic() - started < 60
