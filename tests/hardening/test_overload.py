"""256 concurrent clients against the gateway process (its own RSS), for a bounded time."""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
import pytest

from tests.hardening.memory import sampled_rss
from tests.hardening.results import Figures
from tests.support.photos import photo

pytestmark = [pytest.mark.triton, pytest.mark.slow]

CLIENTS = 256
DURATION_S = 6.0
MIB = 1024 * 1024


Result = tuple[float, int, str | None, float | None]


async def _hammer(url: str, data: bytes) -> list[Result]:
    """Each client posts in a closed loop until the time is up.

    Per request: client latency, status, Retry-After, and the gateway's own processing_time_ms.
    """
    results: list[Result] = []
    stop_at = time.monotonic() + DURATION_S
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)

    async def client(http: httpx.AsyncClient) -> None:
        while time.monotonic() < stop_at:
            started = time.monotonic()
            response = await http.post(
                "/predict", files={"file": ("a.jpg", data)}, headers={"cache-control": "no-cache"}
            )
            latency = time.monotonic() - started
            served = response.json().get("processing_time_ms") if response.status_code == 200 else None
            results.append((latency, response.status_code, response.headers.get("retry-after"), served))
            if response.status_code == 429:
                await asyncio.sleep(0.05)  # a polite client backs off a little (not the full Retry-After)

    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(CLIENTS)))
    return results


def test_256_concurrent_clients(gateway_process, figures: Figures) -> None:
    data = photo(6)
    with httpx.Client(base_url=gateway_process.url, timeout=30) as http:
        for _ in range(5):
            assert http.post("/predict", files={"file": ("a.jpg", data)}).status_code == 200
    with sampled_rss(gateway_process.process.pid, interval_s=0.02) as rss:
        results = asyncio.run(_hammer(gateway_process.url, data))
    statuses = [status for _, status, _, _ in results]
    counts = {code: statuses.count(code) for code in sorted(set(statuses))}
    accepted = np.array([latency for latency, status, _, _ in results if status == 200])
    served = np.array([ms for _, status, _, ms in results if status == 200]) / 1000
    refused = [retry for _, status, retry, _ in results if status == 429]
    p50, p99 = (float(np.percentile(accepted, q)) for q in (50, 99))
    s50, s99 = (float(np.percentile(served, q)) for q in (50, 99))
    print(
        f"{CLIENTS} clients for {DURATION_S:g} s: {len(results)} requests {counts}; accepted, client-side "
        f"p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms max {accepted.max() * 1000:.0f} ms, in the "
        f"gateway p50 {s50 * 1000:.0f} ms p99 {s99 * 1000:.0f} ms; {rss.describe()}"
    )
    assert set(counts) <= {200, 429}, counts
    assert counts.get(200, 0) > 0 and counts.get(429, 0) > 0, counts
    assert all(retry == "1" for retry in refused)
    # The excess is refused, not queued: inside the gateway an accepted request is quick, and even seen
    # from a client sharing the 2 cores with 255 others it stays within the 10 s request deadline.
    assert s99 < 2.0, s99
    assert p99 < 10.0, p99
    assert rss.growth < 150 * MIB, rss.describe()
    figures.row(
        "Overload (tests/hardening/test_overload.py)",
        f"{CLIENTS} closed-loop clients for {DURATION_S:g} s, MAX_IN_FLIGHT 64, Triton queue 4, tracking on",
        ["requests", "statuses", "in the gateway p50 / p99", "client p50 / p99 / max", "gateway RSS"],
        [
            len(results),
            str(counts),
            f"{s50 * 1000:.0f} / {s99 * 1000:.0f} ms",
            f"{p50:.1f} / {p99:.1f} / {accepted.max():.1f} s",
            rss.describe(),
        ],
        command=".venv/bin/pytest tests/hardening/test_overload.py -q -s",
    )
    assert gateway_process.alive()
    with httpx.Client(base_url=gateway_process.url, timeout=30) as http:
        assert http.get("/health/ready").status_code == 200
        assert http.get("/health").json()["in_flight"] == 0
