"""Past one machine, proven on this one: nginx → 2 gateways → 2 Tritons, one PostgreSQL (all real).

Load phases are a few seconds of 4 clients each, bounded in time; the figures each test measures
are printed (-s) and, with REPLICAS_REPORT set, written to docs/reliability/replicas.json.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import httpx
import pytest

from serving.topology import Topology
from tests.replicas.replica_helpers import PHOTOS, Load, labels_in_database

# Generous: the first test also pays for starting PostgreSQL, 2 Tritons, 2 gateways and nginx, which
# took minutes on this shared 2-core machine when it was busy.
pytestmark = pytest.mark.timeout(600)

_SAME_ON_EVERY_REPLICA = ("counts", "quality", "latency_ms", "confidence", "class_ratio")


def _assert_feedback_kept(topology: Topology, acked: dict[str, str]) -> int:
    """Every acknowledged label is in PostgreSQL, as acknowledged; returns how many were found."""
    stored = labels_in_database(topology.database_url, list(acked))
    lost = {rid: label for rid, label in acked.items() if stored.get(rid) != label}
    assert not lost, f"{len(lost)} acknowledged labels missing or different in the database: {lost}"
    return len(stored)


def test_feedback_through_another_replica_and_identical_stats(topology: Topology, figures: Any) -> None:
    a, b = (httpx.Client(base_url=g.url, timeout=30) for g in topology.gateways[:2])
    with a, b:
        answer = a.post("/predict", files={"file": ("a.jpg", PHOTOS[0], "image/jpeg")})
        assert answer.status_code == 200, answer.text
        request_id = answer.json()["request_id"]
        through_b = b.post("/feedback", json={"request_id": request_id, "true_label": "cat"})
        assert through_b.status_code == 201, through_b.text
        # The conflict is seen by the replica that did not store the label, too.
        conflict = a.post("/feedback", json={"request_id": request_id, "true_label": "dog"})
        assert conflict.status_code == 409, conflict.text
        assert b.post("/feedback", json={"request_id": request_id, "true_label": "cat"}).status_code == 200
        stats_a, stats_b = (c.get("/stats", params={"window": "all"}).json() for c in (a, b))
    for key in _SAME_ON_EVERY_REPLICA:
        assert stats_a[key] == stats_b[key], key
    assert stats_a["counts"]["labelled"] >= 1
    figures.add(
        "Feedback across replicas",
        "A prediction answered by gateway A is labelled through gateway B (201); the same "
        "request_id with another label through A is refused (409); /stats?window=all read from "
        "both replicas agrees on counts, quality, latency, confidence and class ratio.",
        ["check", "result"],
        [
            ["feedback via B for A's prediction", through_b.status_code],
            ["conflicting label via A", conflict.status_code],
            [
                "/stats predictions (A / B)",
                f"{stats_a['counts']['predictions']} / {stats_b['counts']['predictions']}",
            ],
            ["/stats labelled (A / B)", f"{stats_a['counts']['labelled']} / {stats_b['counts']['labelled']}"],
        ],
        test="another_replica",
    )


def test_kill_9_one_gateway_under_load(topology: Topology, figures: Any) -> None:
    victim = topology.gateways[0]
    dead = f"127.0.0.1:{victim.port}"
    with Load(topology.url, clients=4, seconds=20) as load:
        time.sleep(2.0)
        killed_at = time.time()
        assert victim.process is not None
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(10)
        time.sleep(4.0)
        result = load.stop()
    # Every request got an HTTP answer (no hang, no reset reached a client), and any failure is a
    # clear status; the proxy retried refused connections on the survivor.
    assert result.exceptions == {}, result.exceptions
    assert all(
        key.split()[1] in {"200", "201", "502", "503", "504"} or key == "feedback 404"
        for key in result.statuses
    )
    # A label for a prediction the victim answered but had not committed yet (its last flush window,
    # TRACKING_FLUSH_INTERVAL_MS) finds no row on the survivor: 404, at most one per client.
    assert result.statuses.get("feedback 404", 0) <= 4, result.statuses
    after = [e for e in topology.nginx_log() if e.time > killed_at + 0.5]
    answered_by_dead = [e for e in after if e.upstreams and e.upstreams[-1] == dead]
    assert after and not answered_by_dead, "the proxy kept getting answers from a dead gateway?"
    assert all(200 <= e.status < 300 for e in after[-20:]), "the survivor stopped serving"
    found = _assert_feedback_kept(topology, result.acked)
    topology.start_gateway(victim.index)  # back for the next tests
    summary = result.summary()
    figures.add(
        "kill -9 of one gateway under load",
        "4 clients through nginx (predict, then feedback on the answer) for ~6 s; gateway 0 is "
        "SIGKILLed after 2 s. nginx passes refused or dropped connections to the other gateway "
        "(proxy_next_upstream error timeout non_idempotent). Every acknowledged label is read back "
        "from PostgreSQL afterwards.",
        [
            "requests sent",
            "answered 2xx",
            "failed",
            "statuses",
            "feedback acknowledged",
            "found in PostgreSQL",
        ],
        [
            [
                summary["sent"],
                summary["answered_2xx"],
                summary["failed"],
                summary["statuses"],
                len(result.acked),
                found,
            ]
        ],
        test="kill_9",
    )


def test_rolling_restart_with_sigterm_has_zero_failed_requests(topology: Topology, figures: Any) -> None:
    rows: list[list[Any]] = []
    with Load(topology.url, clients=4, seconds=90) as load:
        time.sleep(1.0)
        for gateway in topology.gateways:
            with httpx.Client(base_url=gateway.url, timeout=5) as direct:
                assert direct.get("/health/ready").status_code == 200
                sent_at = time.monotonic()
                topology.signal_gateway(gateway.index, signal.SIGTERM)
                unready_after = None
                while unready_after is None and time.monotonic() - sent_at < 5:
                    try:
                        ready = direct.get("/health/ready")
                        if ready.status_code == 503 and "draining" in ready.text:
                            unready_after = time.monotonic() - sent_at
                    except httpx.HTTPError:
                        break
                    time.sleep(0.05)
                # Draining is not refusing: the not-ready replica still answers, and tells the
                # client (or proxy) to take its next request elsewhere.
                served = direct.post("/predict", files={"file": ("d.jpg", PHOTOS[1], "image/jpeg")})
                assert served.status_code == 200, served.text
                assert served.headers.get("connection") == "close"
            code = topology.wait_gateway_exit(gateway.index, timeout_s=60)
            exited_after = time.monotonic() - sent_at
            topology.start_gateway(gateway.index)
            rows.append(
                [
                    gateway.index,
                    f"{unready_after:.2f}" if unready_after is not None else "-",
                    f"{exited_after:.2f}",
                    code,
                ]
            )
            assert unready_after is not None and unready_after < exited_after
        time.sleep(1.0)
        result = load.stop()
    summary = result.summary()
    assert result.failed == 0, summary
    assert result.sent > 20, summary
    found = _assert_feedback_kept(topology, result.acked)
    figures.add(
        "Rolling restart (SIGTERM, one gateway at a time) under load",
        "4 clients through nginx while each gateway in turn gets SIGTERM, drains "
        "(DRAIN_TIMEOUT_S=1: /health/ready 503 and Connection: close while still serving, then "
        "stop accepting and finish in-flight requests), exits and is started again.",
        ["requests sent", "answered 2xx", "failed", "feedback acknowledged", "found in PostgreSQL"],
        [[summary["sent"], summary["answered_2xx"], summary["failed"], len(result.acked), found]],
        test="rolling_restart",
    )
    figures.sections[-1]["tables"].append(
        {
            "caption": "Drain per gateway (seconds after SIGTERM)",
            "command": figures.sections[-1]["tables"][0]["command"],
            "columns": ["gateway", "/health/ready 503 after", "exited after", "exit status"],
            "rows": rows,
        }
    )


def _split(topology: Topology, before: list[int]) -> list[int]:
    return [topology.triton_requests(j) - before[j] for j in range(len(topology.tritons))]


def test_requests_are_balanced_across_tritons_and_fail_over(topology: Topology, figures: Any) -> None:
    tritons = range(len(topology.tritons))
    # 1. Balance: each Triton's own success counter over a short burst.
    before = [topology.triton_requests(j) for j in tritons]
    # A fixed count, not a time: the split of 120 requests means the same on a fast or busy machine.
    with Load(topology.url, clients=4, seconds=60, feedback=False, requests=120) as load:
        balanced = load.wait()
    split = _split(topology, before)
    shares = [n / sum(split) for n in split]
    assert balanced.failed == 0, balanced.summary()
    assert all(0.4 <= s <= 0.6 for s in shares), split

    # 2. Triton 1 stopped (graceful SIGINT) under load; the gateways must stay ready throughout.
    readiness: list[int] = []
    polling = threading.Event()

    def poll_ready() -> None:
        with httpx.Client(timeout=5) as client:
            while not polling.is_set():
                for gateway in topology.gateways:
                    readiness.append(client.get(gateway.url + "/health/ready").status_code)
                time.sleep(0.1)

    poller = threading.Thread(target=poll_ready, daemon=True)
    poller.start()
    before = [topology.triton_requests(j) for j in tritons]
    with Load(topology.url, clients=4, seconds=60, feedback=False) as load:
        time.sleep(1.5)
        stop_started = time.time()
        topology.stop_triton(1)
        stop_ended = time.time()
        during_before = topology.triton_requests(0)
        time.sleep(2.0)
        stopped = load.stop()
    during = topology.triton_requests(0) - during_before
    polling.set()
    poller.join(10)
    server_errors = [(t, what) for t, what in stopped.failures if what.split()[1].startswith("5")]
    assert stopped.exceptions == {}, stopped.exceptions
    # Triton stops in two steps: it finishes the inferences in flight, then unloads its model for
    # ~1-2 s with its port still open, answering "unavailable" (retried on the other server, up
    # to 3 tries). A 503 (clear, with Retry-After) is allowed only inside that window, and none
    # once the server has exited.
    assert all(what == "predict 503" for _, what in server_errors), server_errors
    assert all(stop_started <= t <= stop_ended + 0.5 for t, _ in server_errors), (
        stop_started,
        stop_ended,
        server_errors,
    )
    assert len(server_errors) <= 0.05 * stopped.sent, stopped.summary()
    assert during > 0, "no traffic moved to the remaining Triton"
    assert readiness and all(code == 200 for code in readiness), readiness

    # 3. Restarted: it gets traffic again (the channel reconnects within ~1 s).
    topology.start_triton(1)
    time.sleep(1.5)
    before_back = [topology.triton_requests(j) for j in tritons]
    with Load(topology.url, clients=4, seconds=60, feedback=False, requests=60) as load:
        back = load.wait()
    back_split = _split(topology, before_back)
    assert back.failed == 0, back.summary()
    assert back_split[1] >= 0.25 * sum(back_split), back_split
    figures.add(
        "Requests across 2 Triton servers",
        "Each gateway's TRITON_URL lists both Tritons' gRPC addresses: one channel, round_robin "
        "per request, reconnect backoff capped at 1 s, one retry on another server for an "
        "'unavailable' answer. Counts are each Triton's own nv_inference_request_success.",
        [
            "phase",
            "requests sent",
            "503 (all while Triton 1 was stopping)",
            "Triton 0",
            "Triton 1",
            "gateway /health/ready non-200",
        ],
        [
            ["both up (120 requests)", balanced.sent, balanced.failed, split[0], split[1], "-"],
            [
                f"Triton 1 stopped under load (its stop took {stop_ended - stop_started:.1f} s)",
                stopped.sent,
                len(server_errors),
                f"+{during} after the stop",
                "stopped",
                sum(code != 200 for code in readiness),
            ],
            ["Triton 1 restarted (60 requests)", back.sent, back.failed, back_split[0], back_split[1], "-"],
        ],
        test="balanced",
    )
