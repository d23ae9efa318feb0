"""A closed-loop load generator reporting what perf_analyzer reports.

Each concurrency level runs ``c`` workers that send a request, wait for the answer and send
the next, for at most ``duration_s`` seconds and ``max_requests`` requests (both bounds always
apply). Server-side queue and compute times come from Triton's Prometheus endpoint, as deltas
over the level, so they describe exactly the requests this level sent.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import httpx
import numpy as np

from contract.model import MODEL_NAME

# perf_analyzer's CSV header, in its order, so downstream tooling reads either file.
PERF_ANALYZER_COLUMNS = (
    "Concurrency",
    "Inferences/Second",
    "Client Send",
    "Network+Server Send/Recv",
    "Server Queue",
    "Server Compute Input",
    "Server Compute Infer",
    "Server Compute Output",
    "Client Recv",
    "p50 latency",
    "p90 latency",
    "p95 latency",
    "p99 latency",
    "Avg latency",
    "request/response",
    "response wait",
)

TRITON_COUNTERS = (
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
)


@dataclass
class LevelResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    infer_per_s: float
    p50_us: float
    p90_us: float
    p95_us: float
    p99_us: float
    avg_us: float
    server_queue_us: float | None = None
    server_compute_input_us: float | None = None
    server_compute_infer_us: float | None = None
    server_compute_output_us: float | None = None
    server_avg_batch: float | None = None
    status_counts: dict[str, int] | None = None

    def perf_analyzer_row(self) -> dict[str, float | int | str]:
        def fmt(v: float | None) -> float | str:
            return round(v, 1) if v is not None else ""

        return {
            "Concurrency": self.concurrency,
            "Inferences/Second": round(self.infer_per_s, 2),
            "Client Send": "",
            "Network+Server Send/Recv": "",
            "Server Queue": fmt(self.server_queue_us),
            "Server Compute Input": fmt(self.server_compute_input_us),
            "Server Compute Infer": fmt(self.server_compute_infer_us),
            "Server Compute Output": fmt(self.server_compute_output_us),
            "Client Recv": "",
            "p50 latency": round(self.p50_us),
            "p90 latency": round(self.p90_us),
            "p95 latency": round(self.p95_us),
            "p99 latency": round(self.p99_us),
            "Avg latency": round(self.avg_us),
            "request/response": "",
            "response wait": "",
        }

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def require_loopback(url_or_host: str) -> None:
    """Load runs target this machine only; anything else is refused before a packet is sent."""
    host = urlsplit(url_or_host).hostname if "://" in url_or_host else url_or_host.rsplit(":", 1)[0]
    host = (host or "").strip("[]")
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve {host!r}: {exc}") from exc
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise ValueError(f"load tests target loopback only; {host!r} resolves to {sorted(addresses)}")


_SAMPLE = re.compile(r"^(\w+)\{([^}]*)\}\s+([0-9.eE+-]+)$")


def parse_triton_metrics(text: str, model: str) -> dict[str, float]:
    """Sum each counter in TRITON_COUNTERS over the versions of ``model``."""
    totals = dict.fromkeys(TRITON_COUNTERS, 0.0)
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match.group(1) in totals and f'model="{model}"' in match.group(2):
            totals[match.group(1)] += float(match.group(3))
    return totals


async def scrape_triton(
    client: httpx.AsyncClient, metrics_url: str | None, model: str
) -> dict[str, float] | None:
    if not metrics_url:
        return None
    try:
        response = await client.get(metrics_url, timeout=5.0)
        response.raise_for_status()
    except httpx.HTTPError:
        return None
    return parse_triton_metrics(response.text, model)


SendFn = Callable[[int], Awaitable[str]]
"""Sends request number ``i`` and returns an outcome label ("ok", "429", "error", ...)."""


async def run_level(
    send: SendFn,
    concurrency: int,
    *,
    duration_s: float,
    max_requests: int,
    warmup_requests: int = 0,
    metrics_url: str | None = None,
    model: str = MODEL_NAME,
    images_per_request: int = 1,
) -> LevelResult:
    for i in range(warmup_requests):
        await send(i)
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    issued = 0
    async with httpx.AsyncClient() as scraper:
        before = await scrape_triton(scraper, metrics_url, model)
        start = time.perf_counter()
        deadline = start + duration_s

        async def worker() -> None:
            nonlocal issued
            while issued < max_requests and time.perf_counter() < deadline:
                issued += 1
                t0 = time.perf_counter()
                outcome = await send(issued)
                latencies.append(time.perf_counter() - t0)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        after = await scrape_triton(scraper, metrics_url, model)

    ok = outcomes.get("ok", 0)
    lat_us = np.array(latencies) * 1e6 if latencies else np.zeros(1)
    result = LevelResult(
        concurrency=concurrency,
        requests=len(latencies),
        errors=len(latencies) - ok,
        seconds=elapsed,
        infer_per_s=ok * images_per_request / elapsed if elapsed > 0 else 0.0,
        p50_us=float(np.percentile(lat_us, 50)),
        p90_us=float(np.percentile(lat_us, 90)),
        p95_us=float(np.percentile(lat_us, 95)),
        p99_us=float(np.percentile(lat_us, 99)),
        avg_us=float(lat_us.mean()),
        status_counts=outcomes,
    )
    if before is not None and after is not None:
        delta = {k: after[k] - before[k] for k in TRITON_COUNTERS}
        served = delta["nv_inference_request_success"]
        if served > 0:
            result.server_queue_us = delta["nv_inference_queue_duration_us"] / served
            result.server_compute_input_us = delta["nv_inference_compute_input_duration_us"] / served
            result.server_compute_infer_us = delta["nv_inference_compute_infer_duration_us"] / served
            result.server_compute_output_us = delta["nv_inference_compute_output_duration_us"] / served
        if delta["nv_inference_exec_count"] > 0:
            result.server_avg_batch = delta["nv_inference_count"] / delta["nv_inference_exec_count"]
    return result


async def sweep(
    send: SendFn,
    levels: Sequence[int],
    *,
    duration_s: float,
    max_requests: int,
    warmup_requests: int = 4,
    metrics_url: str | None = None,
    model: str = MODEL_NAME,
    images_per_request: int = 1,
    on_level: Callable[[LevelResult], None] = lambda r: None,
) -> list[LevelResult]:
    results = []
    for level in levels:
        result = await run_level(
            send,
            level,
            duration_s=duration_s,
            max_requests=max_requests,
            warmup_requests=warmup_requests,
            metrics_url=metrics_url,
            model=model,
            images_per_request=images_per_request,
        )
        on_level(result)
        results.append(result)
    return results
