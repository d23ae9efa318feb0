"""Prometheus rules and the Grafana dashboard: valid, tested, and reading metrics that exist."""

from __future__ import annotations

import functools
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.metrics import Metrics
from gateway.tracking import TrackingOptions, TrackingService
from tests.deploy.deploy_helpers import ROOT, load_yaml, replace_in, vd

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
PROMQL_FUNCTIONS = {
    "sum", "rate", "histogram_quantile", "clamp_min", "by", "and", "or", "absent", "max", "offset",
    "le", "up", "bool", "on", "without",
}  # fmt: skip

promtool = pytest.mark.skipif(
    vd.find_tool("promtool") is None, reason="promtool not installed (Debian package prometheus)"
)


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


@functools.cache
def gateway_series() -> frozenset[str]:
    """Every series name the gateway's /metrics exports, from its real registry: the request metrics plus
    the tracking service's quality, drift and cache metrics registered on the same registry, as the app does
    (labelled families are collected even before they have samples)."""
    metrics = Metrics()
    with tempfile.TemporaryDirectory() as tmp:
        options = TrackingOptions(
            db_path=Path(tmp) / "tracking.db",
            quality_window="1h",
            snapshot_path=None,
            refresh_s=30.0,
            snapshot_interval_s=300.0,
            retention_max_age_s=None,
            retention_max_rows=None,
            retention_interval_s=3600.0,
            cache_ttl_s=60.0,
            cache_max_entries=16,
            drift_window=100,
        )
        TrackingService(options, metrics.registry, class_names=())
        families = list(metrics.registry.collect())
    return frozenset(family.name + suffix for family in families for suffix in SUFFIXES[family.type])


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


def dashboard(root: Path = ROOT) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / DASHBOARD.relative_to(ROOT)).read_text())
    return data


def alert_rules(root: Path = ROOT) -> list[dict[str, Any]]:
    rules = yaml.safe_load((root / "monitoring/prometheus/alerts.yml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def unknown_metrics(root: Path = ROOT) -> list[str]:
    """Rules and panels reading a series that neither the gateway, Triton nor a recording rule exports."""
    rules = alert_rules(root)
    recorded = {r["record"] for r in rules if "record" in r}
    known = gateway_series() | TRITON_METRICS | recorded
    problems = []
    for rule in rules:
        if unknown := metric_names(rule["expr"]) - known:
            problems.append(
                f"rule {rule.get('alert') or rule.get('record')}: unknown metrics {sorted(unknown)}"
            )
    for panel in dashboard(root)["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            names = metric_names(expr) | set(re.findall(r'__name__=~"([^"]+)"', expr))
            if unknown := names - known:
                problems.append(f"panel {panel['title']}: unknown metrics {sorted(unknown)}")
    return problems


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
def test_dropping_the_sample_guard_fails_the_rule_tests(repo_copy: Path) -> None:
    replace_in(
        repo_copy / "monitoring/prometheus/alerts.yml",
        "live_labelled_samples >= 50",
        "live_labelled_samples >= 0",
    )
    problems = vd.check_prometheus(repo_copy).problems
    assert any("test rules" in p and "LowLiveAccuracy" in p for p in problems), problems


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
        "InputBrightnessDrift",
        "LowLiveAccuracy",
        "TritonDown",
    } <= alerts
    tests = [t for f in vd.PROMETHEUS_RULE_TESTS for t in load_yaml(f)["tests"]]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert alerts - {"GatewayDown"} <= tested


def test_rules_and_panels_read_only_real_metrics() -> None:
    assert unknown_metrics() == []


def test_an_unknown_metric_name_fails(repo_copy: Path) -> None:
    replace_in(repo_copy / "monitoring/prometheus/alerts.yml", "live_accuracy < 0.8", "live_acuracy < 0.8")
    replace_in(repo_copy / DASHBOARD.relative_to(ROOT), "(drift_psi)", "(drift_psi_index)")
    problems = unknown_metrics(repo_copy)
    assert any("LowLiveAccuracy" in p and "live_acuracy" in p for p in problems), problems
    assert any(p.startswith("panel PSI") and "drift_psi_index" in p for p in problems), problems


def test_no_placeholder_wording_is_left() -> None:
    for path in (DASHBOARD, ROOT / "monitoring/prometheus/alerts.yml", ROOT / "docs/DEPLOYMENT.md"):
        assert "placeholder" not in path.read_text().lower(), path


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
        "live_f1_macro",
        "live_f1)",
        "live_labelled_samples",
        "max by (predicted_class, source) (drift_class_ratio)",
        "max by (source) (drift_mean_confidence)",
        "max by (feature) (drift_psi)",
        "max by (source) (drift_mean_brightness)",
        'prediction_cache_requests_total{result="hit"}',
    ):
        assert needed in exprs, needed
    # PSI thresholds: 0.1 moderate, 0.25 significant.
    (psi,) = [p for p in panels if "drift_psi" in " ".join(t["expr"] for t in p["targets"])]
    steps = psi["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 0.1, 0.25]
    # Every live quality figure is shown beside the number of labelled samples it rests on.
    for panel in panels:
        panel_exprs = [t["expr"] for t in panel["targets"]]
        if any(
            e.startswith(("live_accuracy", "live_f1", "max by (true_class) (live_f1")) for e in panel_exprs
        ):
            assert "live_labelled_samples" in panel_exprs, panel["title"]


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
