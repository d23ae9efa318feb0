import asyncio

import pytest

from benchmarks.loadgen import LevelResult, parse_triton_metrics, require_loopback, run_level

METRICS = """# HELP nv_inference_request_success Number of successful inference requests
nv_inference_request_success{model="cats_dogs",version="1"} 10
nv_inference_request_success{model="cats_dogs",version="2"} 30
nv_inference_request_success{model="other",version="1"} 999
nv_inference_queue_duration_us{model="cats_dogs",version="2"} 4000
nv_inference_exec_count{model="cats_dogs",version="2"} 5
nv_inference_count{model="cats_dogs",version="2"} 40
"""


def test_triton_counters_are_summed_over_versions_of_one_model() -> None:
    totals = parse_triton_metrics(METRICS, "cats_dogs")
    assert totals["nv_inference_request_success"] == 40
    assert totals["nv_inference_queue_duration_us"] == 4000
    assert totals["nv_inference_count"] / totals["nv_inference_exec_count"] == 8


@pytest.mark.parametrize("target", ["127.0.0.1:8001", "http://localhost:8000", "http://[::1]:8000/x"])
def test_loopback_targets_are_allowed(target: str) -> None:
    require_loopback(target)


@pytest.mark.parametrize("target", ["10.0.0.8:8001", "http://192.168.1.4:8000", "8.8.8.8"])
def test_other_targets_are_refused(target: str) -> None:
    with pytest.raises(ValueError, match="loopback only"):
        require_loopback(target)


def test_level_is_bounded_by_count_and_reports_percentiles() -> None:
    calls: list[int] = []

    async def send(i: int) -> str:
        calls.append(i)
        await asyncio.sleep(0.001 * (i % 5))
        return "ok" if i % 10 else "429"

    result: LevelResult = asyncio.run(run_level(send, 4, duration_s=30.0, max_requests=50))
    assert result.requests == 50 == len(calls)
    assert result.errors == 5 and result.status_counts == {"ok": 45, "429": 5}
    assert result.p50_us <= result.p90_us <= result.p95_us <= result.p99_us
    assert result.infer_per_s > 0


def test_level_is_bounded_by_time() -> None:
    async def send(i: int) -> str:
        await asyncio.sleep(0.01)
        return "ok"

    result = asyncio.run(run_level(send, 2, duration_s=0.2, max_requests=10_000))
    assert 0 < result.requests < 100
    assert result.seconds < 1.0
