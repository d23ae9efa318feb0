"""Issue 5 through the real gateway and Triton: feedback codes, stats, live metrics, cache, drift."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.support.photos import photo

KEY = {"X-API-Key": "s3cret"}


def _predict(client: httpx.Client, seed: int, **headers: str) -> httpx.Response:
    response = client.post("/predict", files={"file": ("p.jpg", photo(seed), "image/jpeg")}, headers=headers)
    assert response.status_code == 200, response.text
    return response


def test_feedback_codes_and_stats(tracked_gateway: tuple[httpx.Client, Path]) -> None:
    client, _ = tracked_gateway
    first = _predict(client, 1).json()
    second = _predict(client, 2).json()
    wrong = "dog" if first["predicted_class"] == "cat" else "cat"

    assert (
        client.post("/feedback", json={"request_id": first["request_id"], "true_label": "cat"}).status_code
        == 401
    )
    bad_key = client.post(
        "/feedback",
        json={"request_id": first["request_id"], "true_label": "cat"},
        headers={"X-API-Key": "nope"},
    )
    assert bad_key.status_code == 401 and bad_key.json()["error"] == "unauthorized"
    unknown = client.post("/feedback", json={"request_id": "nope", "true_label": "cat"}, headers=KEY)
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_request_id"
    horse = client.post(
        "/feedback", json={"request_id": first["request_id"], "true_label": "horse"}, headers=KEY
    )
    assert horse.status_code == 422
    malformed = client.post(
        "/feedback", content=b"{not json", headers={**KEY, "Content-Type": "application/json"}
    )
    assert malformed.status_code == 422 and set(malformed.json()) == {"error", "detail"}

    ok = client.post(
        "/feedback",
        json={"request_id": first["request_id"], "true_label": first["predicted_class"]},
        headers=KEY,
    )
    assert ok.status_code == 201
    again = client.post(
        "/feedback",
        json={"request_id": first["request_id"], "true_label": first["predicted_class"]},
        headers=KEY,
    )
    assert again.status_code == 200 and again.json()["stored"] is False
    conflict = client.post(
        "/feedback", json={"request_id": first["request_id"], "true_label": wrong}, headers=KEY
    )
    assert conflict.status_code == 409
    assert (
        client.post(
            "/feedback", json={"request_id": second["request_id"], "true_label": "cat"}, headers=KEY
        ).status_code
        == 201
    )

    # /stats is behind the same key as /feedback when API_KEY is set.
    assert client.get("/stats", params={"window": "1h"}).status_code == 401
    stats = client.get("/stats", params={"window": "1h"}, headers=KEY).json()
    assert stats["counts"]["predictions"] == 2 and stats["counts"]["labelled"] == 2
    expected = (1 + (second["predicted_class"] == "cat")) / 2
    assert stats["quality"]["accuracy"] == pytest.approx(expected)
    assert stats["drift"]["samples"] == 2
    assert client.get("/stats", params={"window": "5x"}, headers=KEY).status_code == 422

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # gauges refresh in the background
        text = client.get("/metrics").text
        if f"live_accuracy {expected}" in text:
            break
        time.sleep(0.2)
    assert f"live_accuracy {expected}" in text
    assert "live_labelled_samples 2.0" in text
    live_ratio = f'drift_class_ratio{{predicted_class="{first["predicted_class"]}",source="live"}}'
    assert live_ratio in text


def test_response_cache_hit_miss_bypass(tracked_gateway: tuple[httpx.Client, Path]) -> None:
    client, _ = tracked_gateway
    miss = _predict(client, 7)
    hit = _predict(client, 7)
    bypass = _predict(client, 7, **{"Cache-Control": "no-cache"})
    assert (miss.headers["X-Cache"], hit.headers["X-Cache"], bypass.headers["X-Cache"]) == (
        "miss",
        "hit",
        "bypass",
    )
    assert hit.json()["probabilities"] == miss.json()["probabilities"]
    assert hit.json()["request_id"] != miss.json()["request_id"]
    text = client.get("/metrics").text
    assert 'prediction_cache_requests_total{result="hit"} 1.0' in text
    # A cached answer is still a logged prediction: feedback can find it.
    ack = client.post(
        "/feedback", json={"request_id": hit.json()["request_id"], "true_label": "dog"}, headers=KEY
    )
    assert ack.status_code == 201


def test_snapshot_written_on_shutdown(triton: object, tmp_path: Path) -> None:
    from tests.support.gateway import GatewayServer, gateway_settings, wait_ready

    snapshot = tmp_path / "stats.json"
    settings = gateway_settings(
        triton.grpc_url,
        tracking_db=tmp_path / "p.db",
        stats_snapshot_path=snapshot,  # type: ignore[attr-defined]
    )
    with GatewayServer(settings) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        wait_ready(client)
        _predict(client, 3)
    assert json.loads(snapshot.read_text())["counts"]["predictions"] == 1
