"""docker-compose.yml and the CPU override: valid Compose, and the stack the issue describes."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deploy_helpers import ROOT, load_yaml, replace_in, vd


def base() -> dict[str, Any]:
    return vd.strip_tags(vd.load_compose(ROOT / "docker-compose.yml"))


def cpu_merged() -> dict[str, Any]:
    raw = vd.load_compose(ROOT / "docker-compose.yml")
    return vd.merge_compose(copy.deepcopy(raw), vd.load_compose(ROOT / "docker-compose.cpu.yml"))


# --- validation, and proof that it can fail ---------------------------------------------------------
def test_compose_files_validate() -> None:
    result = vd.check_compose(ROOT, use_docker=False)
    assert result.ok, "\n".join(result.problems)


def test_unknown_service_key_fails(repo_copy: Path) -> None:
    replace_in(
        repo_copy / "docker-compose.yml", "    read_only: true\n", "    read_only: true\n    imagee: x\n"
    )
    problems = vd.check_compose(repo_copy, use_docker=False).problems
    assert any("imagee" in p for p in problems), problems


def test_broken_override_fails(repo_copy: Path) -> None:
    replace_in(
        repo_copy / "docker-compose.cpu.yml", "      target: cpu-runtime", "      target: [cpu-runtime]"
    )
    problems = vd.check_compose(repo_copy, use_docker=False).problems
    assert any("docker-compose.cpu.yml" in p and "target" in p for p in problems), problems


def test_merge_follows_compose_rules() -> None:
    raw_base = {
        "services": {"t": {"deploy": {"x": 1}, "volumes": ["a:/m:ro", "b:/n"], "command": ["x", "y"]}}
    }
    override = vd.load_compose_text(
        "services:\n  t:\n    deploy: !reset {}\n    volumes: ['c:/m:ro']\n    command: [z]\n"
    )
    merged = vd.merge_compose(raw_base, override)["services"]["t"]
    assert "deploy" not in merged
    assert merged["volumes"] == ["b:/n", "c:/m:ro"]  # same container path: replaced
    assert merged["command"] == ["z"]


# --- what the stack must be ---------------------------------------------------------------------------
def test_triton_reserves_a_gpu_and_serves_the_canonical_repository() -> None:
    triton = base()["services"]["triton"]
    (device,) = triton["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    assert "./model_repository:/models:ro" in triton["volumes"]
    assert "--model-control-mode=none" in triton["command"]
    assert "/v2/health/ready" in " ".join(triton["healthcheck"]["test"])


def test_cpu_override_drops_the_gpu_and_serves_the_derived_repository() -> None:
    triton = cpu_merged()["services"]["triton"]
    assert "deploy" not in triton
    assert triton["volumes"] == ["./build/model_repository_cpu:/models:ro"]
    assert triton["build"]["target"] == "cpu-runtime"
    assert "--model-control-mode=none" in triton["command"]
    assert "healthcheck" in triton  # inherited: the gateway still waits for a ready Triton


@pytest.mark.parametrize("config", [base, cpu_merged], ids=["gpu", "cpu"])
def test_gateway_waits_for_a_healthy_triton(config: Any) -> None:
    services = config()["services"]
    gateway = services["gateway"]
    assert gateway["depends_on"]["triton"]["condition"] == "service_healthy"
    host, _, port = gateway["environment"]["TRITON_URL"].partition(":")
    assert host in services and gateway["environment"]["TRITON_PROTOCOL"] == "grpc" and port == "8001"
    assert gateway["read_only"] is True and gateway["user"] == "10001:10001"
    assert gateway["cap_drop"] == ["ALL"]
    assert "/health/ready" in " ".join(gateway["healthcheck"]["test"])
    assert {"mlflow", "triton", "gateway"} <= set(services)


def test_monitoring_is_a_profile_with_credentials_from_the_environment() -> None:
    services = base()["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
    for name in ("triton", "gateway", "mlflow"):
        assert "profiles" not in services[name]
    env = services["grafana"]["environment"]
    for key, var in (
        ("GF_SECURITY_ADMIN_USER", "GRAFANA_ADMIN_USER"),
        ("GF_SECURITY_ADMIN_PASSWORD", "GRAFANA_ADMIN_PASSWORD"),
    ):
        # ${VAR:?message}: required, no default value to fall back on.
        assert re.fullmatch(rf"\$\{{{var}:\?[^}}]+\}}", env[key]), env[key]
    text = (ROOT / "docker-compose.yml").read_text().lower()
    assert "admin/admin" not in text and not re.search(r"password\W+admin\b", text)


def test_images_are_pinned() -> None:
    for compose in (base(), cpu_merged()):
        for name, service in compose["services"].items():
            image = service.get("image", "")
            if image.startswith("${"):
                assert "build" in service, f"{name}: a variable image needs a build section"
                continue
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", image) and not image.endswith(":latest"), (name, image)


def test_prometheus_scrapes_the_compose_services() -> None:
    compose = base()["services"]
    prometheus = load_yaml("monitoring/prometheus/prometheus.yml")
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in prometheus["scrape_configs"]}
    assert targets["gateway"] == ["gateway:8000"] and compose["gateway"]["environment"]["PORT"] == "8000"
    assert targets["triton"] == ["triton:8002"] and any(
        p.endswith(":8002") for p in compose["triton"]["ports"]
    )
    assert prometheus["rule_files"] == ["alerts.yml"]
    assert "./monitoring/prometheus:/etc/prometheus:ro" in compose["prometheus"]["volumes"]


def test_grafana_provisioning_matches_the_mounts() -> None:
    grafana = base()["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("./"))
    (provider,) = load_yaml("monitoring/grafana/provisioning/dashboards/dashboards.yml")["providers"]
    assert mounts["./monitoring/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"
    (datasource,) = load_yaml("monitoring/grafana/provisioning/datasources/prometheus.yml")["datasources"]
    assert datasource["url"] == "http://prometheus:9090"


def test_docker_compose_config_is_used_where_it_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A recording stand-in: no Compose plugin exists here. It fails like `docker compose config`
    # does on a broken file, and records the variables it was given.
    log = tmp_path / "calls.log"
    docker = tmp_path / "docker"
    docker.write_text(
        "#!/bin/bash\n"
        f'echo "$* GRAFANA_ADMIN_PASSWORD=$GRAFANA_ADMIN_PASSWORD" >> {log}\n'
        'if [ "$1 $2" = "compose version" ]; then exit 0; fi\n'
        "echo 'services.gateway additional property imagee is not allowed' >&2; exit 15\n"
    )
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("GRAFANA_ADMIN_PASSWORD", raising=False)
    assert vd.docker_compose_works()
    result = vd.check_compose(ROOT)
    assert len(result.problems) == 2 and "imagee" in result.problems[0]
    calls = [line for line in log.read_text().splitlines() if " config " in line]
    assert len(calls) == 2
    assert any("docker-compose.cpu.yml --profile monitoring config --quiet" in c for c in calls)
    assert all(c.endswith("GRAFANA_ADMIN_PASSWORD=validate-only") for c in calls)
