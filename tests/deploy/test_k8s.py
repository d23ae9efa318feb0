"""Kubernetes manifests: rendered by kustomize, schema-valid, and saying what the issue requires."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.settings import Settings
from scoring.__main__ import build_parser as scoring_parser
from tests.deploy.deploy_helpers import ROOT, container, find, load_yaml, rendered, replace_in, vd

CD_TEXT = (ROOT / ".github/workflows/cd.yml").read_text()
OVERLAYS = ("k8s/overlays/gpu", "k8s/overlays/cpu")


# --- schema validation, and proof that it can fail ---------------------------------------------
def test_every_manifest_renders_and_validates() -> None:
    result = vd.check_k8s(ROOT)
    assert result.ok, "\n".join(result.problems)
    assert len(result.notes) == len(vd.KUSTOMIZATIONS) + len(vd.PLAIN_MANIFESTS)


def test_containers_as_a_string_fails_the_schema() -> None:
    deployment = copy.deepcopy(find(rendered("k8s/overlays/gpu"), "Deployment", "gateway"))
    assert vd.validate_k8s_object(deployment, ROOT / "k8s/schemas") == []
    deployment["spec"]["template"]["spec"]["containers"] = "gateway"
    problems = vd.validate_k8s_object(deployment, ROOT / "k8s/schemas")
    assert problems and "containers" in problems[0], problems


def test_wrong_type_in_a_manifest_fails(repo_copy: Path) -> None:
    # kustomize passes this through untouched: only the schema catches it.
    replace_in(
        repo_copy / "k8s/base/triton-deployment.yaml", "revisionHistoryLimit: 3", 'revisionHistoryLimit: "3"'
    )
    problems = vd.check_k8s(repo_copy).problems
    assert any("Deployment/triton" in p and "revisionHistoryLimit" in p for p in problems), problems


def test_containers_as_a_string_fails_the_render(repo_copy: Path) -> None:
    path = repo_copy / "k8s/base/gateway-deployment.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["template"]["spec"]["containers"] = "gateway"
    path.write_text(yaml.safe_dump(doc))
    problems = vd.check_k8s(repo_copy).problems
    assert any("containers" in p for p in problems), problems


def test_misspelt_field_fails_strict_validation(repo_copy: Path) -> None:
    replace_in(repo_copy / "k8s/base/hpa-gateway.yaml", "minReplicas: 2", "minReplica: 2")
    problems = vd.check_k8s(repo_copy).problems
    assert any("HorizontalPodAutoscaler/gateway" in p and "minReplica" in p for p in problems), problems


def test_broken_custom_resources_fail(repo_copy: Path) -> None:
    replace_in(repo_copy / "k8s/base/servicemonitor.yaml", "interval: 15s", "interval: 15 seconds")
    replace_in(repo_copy / "k8s/argocd/application.yaml", "prune: true", 'prune: "yes"')
    problems = vd.check_k8s(repo_copy).problems
    assert any("ServiceMonitor/" in p and "interval" in p for p in problems), problems
    assert any("Application/cats-dogs-classifier" in p and "prune" in p for p in problems), problems


def test_kustomize_error_is_reported(repo_copy: Path) -> None:
    replace_in(repo_copy / "k8s/base/kustomization.yaml", "  - pdb.yaml", "  - pdb-missing.yaml")
    problems = vd.check_k8s(repo_copy).problems
    assert any("pdb-missing.yaml" in p for p in problems), problems


def test_unknown_kind_has_no_schema() -> None:
    problems = vd.validate_k8s_object(
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}, ROOT / "k8s/schemas"
    )
    assert problems and "no schema" in problems[0]


# --- what the manifests must say ------------------------------------------------------------------
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_deployment(overlay: str) -> None:
    deployment = find(rendered(overlay), "Deployment", "gateway")
    assert "replicas" not in deployment["spec"]  # the HPA owns the count
    pod = deployment["spec"]["template"]["spec"]
    gateway = container(deployment, "gateway")
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/health/live"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(gateway["resources"][kind])
    security = gateway["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # A read-only root still needs a writable /tmp for spooled uploads.
    assert any(m["mountPath"] == "/tmp" for m in gateway["volumeMounts"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_deployment(overlay: str) -> None:
    deployment = find(rendered(overlay), "Deployment", "triton")
    triton = container(deployment, "triton")
    assert triton["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert triton["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    startup = triton["startupProbe"]
    assert startup["httpGet"]["path"] == "/v2/health/ready"
    # Model load and warm-up get at least five minutes before liveness can kill the pod.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    assert "--model-control-mode=none" in triton["args"]
    assert "--model-repository=$(MODEL_REPOSITORY)" in triton["args"]
    env = {e["name"]: e for e in triton["env"]}
    assert env["MODEL_REPOSITORY"]["valueFrom"]["configMapKeyRef"]["name"] == "cats-dogs-config"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["model-repository"]
    (puller,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert puller["image"].split(":")[0].endswith("cats-dogs-puller")
    assert {"--alias=$(MODEL_ALIAS)", "--dest=/models"} <= set(puller["args"])
    assert not [o for o in rendered(overlay) if o["kind"] == "PersistentVolumeClaim"]


def test_gpu_overlay_requests_one_gpu() -> None:
    triton = container(find(rendered("k8s/overlays/gpu"), "Deployment", "triton"), "triton")
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert triton["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert triton["image"].startswith("nvcr.io/nvidia/tritonserver:")


def test_cpu_overlay_has_no_gpu_and_serves_the_cpu_image() -> None:
    objects = rendered("k8s/overlays/cpu")
    assert "nvidia.com/gpu" not in yaml.safe_dump_all(objects)
    triton = container(find(objects, "Deployment", "triton"), "triton")
    assert "--pinned-memory-pool-byte-size=0" in triton["args"]
    assert "cats-dogs-triton-cpu" in triton["image"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_resolved_and_tagged(overlay: str) -> None:
    for obj in rendered(overlay):
        if obj["kind"] != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        for c in pod["containers"] + pod.get("initContainers", []):
            # registry/name:tag, or one of this project's images whose registry and tag cd.yml sets on
            # every push to main (a documented parameter, never an OWNER placeholder).
            image = c["image"]
            if not re.fullmatch(r"[a-z0-9.-]+\.[a-z]+/[\w./-]+:[\w.-]+", image):
                name = image.split(":")[0]
                assert (
                    name.startswith("cats-dogs-")
                    and f"${{prefix}}-{name.removeprefix('cats-dogs-')}:" in CD_TEXT
                ), image


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_select_their_pods(overlay: str) -> None:
    objects = rendered(overlay)
    triton_svc = find(objects, "Service", "triton")
    assert triton_svc["spec"]["type"] == "ClusterIP"
    assert {p["port"] for p in triton_svc["spec"]["ports"]} == {8000, 8001, 8002}
    assert find(objects, "Service", "gateway")["spec"]["type"] == "LoadBalancer"
    for svc in (o for o in objects if o["kind"] == "Service"):
        deployment = find(objects, "Deployment", svc["metadata"]["name"].removesuffix("-headless"))
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= labels.items()
        port_names = {
            p["name"] for c in deployment["spec"]["template"]["spec"]["containers"] for p in c["ports"]
        }
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= port_names


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return bool(selector["matchLabels"]) and selector["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pdbs_servicemonitors_and_hpas_point_at_real_objects(overlay: str) -> None:
    objects = rendered(overlay)
    pod_labels = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in objects
        if d["kind"] == "Deployment"
    }
    for pdb in (o for o in objects if o["kind"] == "PodDisruptionBudget"):
        assert _selects(pdb["spec"]["selector"], pod_labels[pdb["metadata"]["name"]])
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    monitors = [o for o in objects if o["kind"] == "ServiceMonitor"]
    assert {m["metadata"]["name"] for m in monitors} == {"gateway", "triton"}
    for monitor in monitors:
        svc = services[monitor["metadata"]["name"]]
        assert _selects(monitor["spec"]["selector"], svc["metadata"]["labels"])
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in svc["spec"]["ports"]}
    for hpa in (o for o in objects if o["kind"] == "HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["name"] in pod_labels


def test_gateway_scales_on_cpu_and_triton_on_the_adapter_queue_metric() -> None:
    objects = rendered("k8s/overlays/gpu")
    (gateway_metric,) = find(objects, "HorizontalPodAutoscaler", "gateway")["spec"]["metrics"]
    assert gateway_metric["resource"]["name"] == "cpu"
    (triton_metric,) = find(objects, "HorizontalPodAutoscaler", "triton")["spec"]["metrics"]
    rules = load_yaml("k8s/prometheus-adapter/values.yaml")["rules"]["custom"]
    exposed = {r["name"]["as"]: r for r in rules}
    rule = exposed[triton_metric["pods"]["metric"]["name"]]
    assert "nv_inference_queue_duration_us" in rule["seriesQuery"]
    assert "nv_inference_request_success" in rule["metricsQuery"]


def test_only_the_gateway_reaches_triton_inference_ports() -> None:
    objects = rendered("k8s/overlays/gpu")
    policy = find(objects, "NetworkPolicy", "triton-ingress")
    triton_labels = find(objects, "Deployment", "triton")["spec"]["template"]["metadata"]["labels"]
    assert _selects(policy["spec"]["podSelector"], triton_labels)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    allowed: dict[int, set[str]] = {}
    for rule in policy["spec"]["ingress"]:
        for peer in rule["from"]:
            source = (
                peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                if "podSelector" in peer
                else "namespace:" + peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            )
            for port in rule["ports"]:
                allowed.setdefault(port["port"], set()).add(source)
    assert allowed[8000] == {"gateway"}
    assert allowed[8001] == {"gateway", "bulk-scoring"}  # the batch scorer is a Triton client by design
    assert allowed[8002] == {"namespace:monitoring"}


def test_configmap_is_a_valid_gateway_configuration() -> None:
    objects = rendered("k8s/overlays/gpu")
    data = find(objects, "ConfigMap", "cats-dogs-config")["data"]
    settings = Settings(**{k.lower(): v for k, v in data.items() if k != "MODEL_REPOSITORY"})
    host, _, port = settings.triton_url.removeprefix("dns:///").rpartition(":")
    service = find(objects, "Service", "triton-headless")
    triton_ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert host == "triton-headless" and int(port) == triton_ports[settings.triton_protocol]
    assert service["spec"]["clusterIP"] == "None"
    assert settings.host == "0.0.0.0"


def test_bulk_scoring_is_an_indexed_job_the_scorer_accepts() -> None:
    job = find(rendered("k8s/jobs/bulk-scoring"), "Job", "bulk-scoring")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    scorer = container({"spec": spec}, "scorer")
    assert scorer["image"].split(":")[0] == "cats-dogs-trainer" and '"cats-dogs-trainer=${prefix}' in CD_TEXT
    env = {e["name"]: e for e in scorer["env"]}
    assert env["SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )
    assert scorer["args"][0] == "scoring"  # the trainer image's entrypoint is `python -m`
    outputs = set()
    for index in range(spec["completions"]):
        args = [a.replace("$(SHARD_INDEX)", str(index)) for a in scorer["args"][1:]]
        parsed = scoring_parser().parse_args(args)
        # Every pod scores a different shard of the same N, and writes its own file.
        assert (parsed.shard.index, parsed.shard.count) == (index, spec["completions"])
        outputs.add(parsed.output)
    assert len(outputs) == spec["completions"]
    failure_rules = spec["podFailurePolicy"]["rules"]
    assert {r["onExitCodes"]["containerName"] for r in failure_rules} == {"scorer"}
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_argocd_syncs_a_rendered_overlay() -> None:
    app = load_yaml("k8s/argocd/application.yaml")
    path = app["spec"]["source"]["path"]
    assert path in OVERLAYS
    namespace = find(rendered(path), "Namespace", app["spec"]["destination"]["namespace"])
    assert namespace["metadata"]["name"] == "cats-dogs"
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}


# --- rules a first deploy depends on (each proven on a broken copy) --------------------------------
def test_replicas_pinned_under_an_hpa_fails(repo_copy: Path) -> None:
    replace_in(
        repo_copy / "k8s/base/gateway-deployment.yaml",
        "  revisionHistoryLimit: 3",
        "  replicas: 2\n  revisionHistoryLimit: 3",
    )
    problems = vd.check_k8s(repo_copy).problems
    assert any(
        "Deployment/gateway: spec.replicas is set but HorizontalPodAutoscaler/gateway" in p for p in problems
    ), problems


def test_placeholder_repo_url_fails(repo_copy: Path) -> None:
    replace_in(
        repo_copy / "k8s/argocd/application.yaml",
        "repoURL: ${REPO_URL}",
        "repoURL: https://github.com/OWNER/cats-dogs-classifier.git",
    )
    problems = vd.check_k8s(repo_copy).problems
    assert any("application.yaml: placeholder in 'OWNER'" in p for p in problems), problems


def test_placeholder_image_owner_fails(repo_copy: Path) -> None:
    replace_in(
        repo_copy / "k8s/overlays/cpu/kustomization.yaml",
        "  - name: cats-dogs-gateway\n",
        "  - name: cats-dogs-gateway\n    newName: ghcr.io/OWNER/cats-dogs-gateway\n",
    )
    problems = vd.check_k8s(repo_copy).problems
    assert any("overlays/cpu" in p and "holds a placeholder" in p for p in problems), problems


def test_missing_model_puller_init_container_fails(repo_copy: Path) -> None:
    path = repo_copy / "k8s/base/triton-deployment.yaml"
    doc = yaml.safe_load(path.read_text())
    del doc["spec"]["template"]["spec"]["initContainers"]
    path.write_text(yaml.safe_dump(doc))
    problems = vd.check_k8s(repo_copy).problems
    assert any("Deployment/triton" in p and "model-puller missing" in p for p in problems), problems


def test_max_surge_on_gpu_triton_fails(repo_copy: Path) -> None:
    replace_in(repo_copy / "k8s/overlays/gpu/triton-gpu.yaml", "maxSurge: 0", "maxSurge: 1")
    problems = vd.check_k8s(repo_copy).problems
    assert any("overlays/gpu" in p and "maxSurge 1 on a GPU Triton" in p for p in problems), problems
    assert not any("overlays/cpu" in p and "maxSurge" in p for p in problems), problems


def test_grace_period_shorter_than_the_drain_fails(repo_copy: Path) -> None:
    replace_in(repo_copy / "k8s/base/configmap.yaml", 'DRAIN_TIMEOUT_S: "15"', 'DRAIN_TIMEOUT_S: "30"')
    problems = vd.check_k8s(repo_copy).problems
    assert any("terminationGracePeriodSeconds 25 <= preStop + DRAIN_TIMEOUT_S (35)" in p for p in problems), (
        problems
    )


def test_triton_url_through_a_cluster_ip_fails(repo_copy: Path) -> None:
    replace_in(
        repo_copy / "k8s/base/configmap.yaml",
        "TRITON_URL: dns:///triton-headless:8001",
        "TRITON_URL: triton:8001",
    )
    problems = vd.check_k8s(repo_copy).problems
    assert any("Service 'triton' is not headless" in p for p in problems), problems


def test_gateway_without_the_database_secret_fails(repo_copy: Path) -> None:
    replace_in(
        repo_copy / "k8s/base/gateway-deployment.yaml", "name: TRACKING_DATABASE_URL", "name: TRACKING_DB"
    )
    problems = vd.check_k8s(repo_copy).problems
    assert any("TRACKING_DATABASE_URL must come from a Secret" in p for p in problems), problems


def test_monitoring_objects_out_of_date_fail(repo_copy: Path) -> None:
    replace_in(repo_copy / "monitoring/prometheus/alerts.yml", "for: 15m", "for: 16m")
    problems = vd.check_k8s(repo_copy).problems
    assert any("k8s/monitoring/prometheusrule.yaml is out of date" in p for p in problems), problems


def test_prometheus_rule_and_dashboard_come_from_monitoring() -> None:
    import json

    objects = rendered("k8s/overlays/gpu")
    rule = find(objects, "PrometheusRule", "cats-dogs")
    assert rule["spec"]["groups"] == load_yaml("monitoring/prometheus/alerts.yml")["groups"]
    dashboards = find(objects, "ConfigMap", "cats-dogs-grafana-dashboards")
    source = json.loads((ROOT / "monitoring/grafana/dashboards/cats-dogs.json").read_text())
    assert json.loads(dashboards["data"]["cats-dogs.json"]) == source


@pytest.mark.parametrize("component", ["model-repository-pvc", "gpu-feature-discovery", "image-pull-secret"])
def test_optional_components_render_and_validate(repo_copy: Path, component: str) -> None:
    overlay = repo_copy / "k8s/overlays/with-component"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        f"resources: [../gpu]\ncomponents: [../../components/{component}]\n"
    )
    objects = vd.render_kustomization(overlay)
    problems = [p for o in objects for p in vd.validate_k8s_object(o, ROOT / "k8s/schemas")]
    triton = find(tuple(objects), "Deployment", "triton")["spec"]["template"]["spec"]
    if component == "model-repository-pvc":
        assert "initContainers" not in triton and find(
            tuple(objects), "PersistentVolumeClaim", "model-repository"
        )
    elif component == "gpu-feature-discovery":
        assert triton["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    else:
        assert triton["imagePullSecrets"] == [{"name": "ghcr-pull"}]
    assert problems == [] and vd.deployment_rules(objects) == []
