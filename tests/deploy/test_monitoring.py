"""Prometheus rules and the Grafana dashboard: valid, tested, and reading metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import ROOT, load_yaml, replace_in, vd

from gateway.metrics import Metrics

DASHBOARD = ROOT / "monitoring/grafana/dashboards/cats-dogs.json"
# Triton's metric families the rules and panels may read (Triton 2.51 /metrics).
TRITON_METRICS = {
    "nv_inference_queue_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_exec_count",
    "nv_inference_count",
}
# Placeholders for issue 5 (performance tracking); allowed only in panels that say so.
ISSUE5 = re.compile(r"^(live_accuracy|live_f1|drift_.*)$")
PROMQL_FUNCTIONS = {
    "sum", "rate", "histogram_quantile", "clamp_min", "by", "and", "or", "absent", "max", "offset",
    "le", "up", "bool", "on", "without",
}  # fmt: skip

promtool = pytest.mark.skipif(
    vd.find_tool("promtool") is None, reason="promtool not installed (Debian package prometheus)"
)


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def gateway_series() -> set[str]:
    """Every series name the gateway exports, from its real registry (labelled ones have no samples yet)."""
    return {
        family.name + suffix for family in Metrics().registry.collect() for suffix in SUFFIXES[family.type]
    }


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\b\d[\d.]*(e[-+]?\d+)?\b", "", expr)  # numbers, 1e-9 included
    words = set(re.findall(r"[a-zA-Z_:][\w:]*", expr))
    return {
        w for w in words if w not in PROMQL_FUNCTIONS and not w.startswith("$") and not re.match(r"^\d", w)
    }


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def alert_rules() -> list[dict[str, Any]]:
    return [
        rule for group in load_yaml("monitoring/prometheus/alerts.yml")["groups"] for rule in group["rules"]
    ]


# --- promtool, and proof that it can fail ------------------------------------------------------------
@promtool
def test_prometheus_config_rules_and_rule_tests_pass() -> None:
    result = vd.check_prometheus(ROOT)
    assert result.ok, "\n".join(result.problems)


@promtool
def test_broken_promql_fails(repo_copy: Path) -> None:
    replace_in(repo_copy / "monitoring/prometheus/alerts.yml", "> 0.5", "> > 0.5")
    problems = vd.check_prometheus(repo_copy).problems
    assert any("check rules" in p for p in problems), problems


@promtool
def test_a_wrong_threshold_fails_the_rule_tests(repo_copy: Path) -> None:
    replace_in(repo_copy / "monitoring/prometheus/alerts.yml", "rate5m > 0.05", "rate5m > 0.5")
    problems = vd.check_prometheus(repo_copy).problems
    assert any("test rules" in p and "GatewayHighErrorRate" in p for p in problems), problems


# --- alert and panel content ------------------------------------------------------------------------------
def test_the_required_alerts_exist_and_each_has_a_rule_test() -> None:
    alerts = {r["alert"] for r in alert_rules() if "alert" in r}
    assert {
        "GatewayHighErrorRate",
        "GatewayHighLatencyP95",
        "PredictionConfidenceDrift",
        "TritonDown",
    } <= alerts
    tests = [t for f in vd.PROMETHEUS_RULE_TESTS for t in load_yaml(f)["tests"]]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert alerts - {"GatewayDown"} <= tested


def test_rules_read_only_real_metrics() -> None:
    known = gateway_series() | TRITON_METRICS
    recorded = {r["record"] for r in alert_rules() if "record" in r}
    for rule in alert_rules():
        unknown = metric_names(rule["expr"]) - known - recorded
        assert not unknown, f"{rule.get('alert') or rule.get('record')}: unknown metrics {unknown}"


def test_dashboard_panels_read_real_metrics_or_marked_placeholders() -> None:
    known = gateway_series() | TRITON_METRICS | {r["record"] for r in alert_rules() if "record" in r}
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            names = metric_names(expr) | set(re.findall(r'__name__=~"([^"]+)"', expr))
            placeholders = {n for n in names if ISSUE5.match(n.replace(".*", "x"))}
            if placeholders:
                assert "issue 5" in panel["description"] and "PLACEHOLDER" in panel["description"], panel[
                    "title"
                ]
            assert not names - known - placeholders, f"{panel['title']}: unknown metrics {names - known}"


def test_dashboard_has_the_required_views() -> None:
    board = dashboard()
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for needed in (
        "rate(prediction_requests_total",
        "histogram_quantile(0.5, sum by (le) (rate(prediction_latency_seconds_bucket",
        "histogram_quantile(0.95, sum by (le) (rate(prediction_latency_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(prediction_latency_seconds_bucket",
        "prediction_errors_total",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
        "rate(nv_inference_count[$__rate_interval])) / sum(rate(nv_inference_exec_count",
        "prediction_confidence_bucket",
        "live_accuracy",
        "drift_",
    ):
        assert needed in exprs, needed
    assert "issue 5" in board["description"]


def test_dashboard_uses_the_provisioned_datasource() -> None:
    (datasource,) = load_yaml("monitoring/grafana/provisioning/datasources/prometheus.yml")["datasources"]
    for panel in dashboard()["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}


def test_metric_name_extraction() -> None:
    assert metric_names('sum by (le, model) (rate(foo_bucket{job="x"}[5m])) / clamp_min(up, 1e-9)') == {
        "foo_bucket"
    }
    assert "prediction_latency_seconds_bucket" in gateway_series()
