"""GitHub Actions workflows: actionlint-clean, pinned, and running this repository's real commands."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.deploy.deploy_helpers import ROOT, load_yaml, replace_in, vd

WORKFLOWS = ROOT / ".github" / "workflows"


def ci() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(".github/workflows/ci.yml")
    return data


def cd() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(".github/workflows/cd.yml")
    return data


def steps_text(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) + str(step.get("with", "")) for step in job["steps"])


def walk(node: Any) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-zA-Z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))


# --- actionlint, and proof that it can fail ---------------------------------------------------------
def test_workflows_pass_actionlint() -> None:
    result = vd.check_workflows(ROOT)
    assert result.ok, "\n".join(result.problems)


def test_bad_expression_fails(repo_copy: Path) -> None:
    replace_in(
        repo_copy / ".github/workflows/ci.yml", "${{ matrix.dockerfile }}", "${{ matrix.dockerfile ]] }}"
    )
    problems = vd.check_workflows(repo_copy).problems
    assert any("ci.yml" in p for p in problems), problems


def test_shell_error_in_a_run_step_fails(repo_copy: Path) -> None:
    replace_in(repo_copy / ".github/workflows/ci.yml", '>> "$GITHUB_ENV"', ">> $GITHUB_ENV")
    problems = vd.check_workflows(repo_copy).problems
    assert any("shellcheck" in p.lower() or "SC2086" in p for p in problems), problems


# --- policies -------------------------------------------------------------------------------------------
def test_actions_are_pinned_by_full_sha() -> None:
    uses = [
        (path.name, value)
        for path in WORKFLOWS.glob("*.yml")
        for key, value in walk(load_yaml(str(path.relative_to(ROOT))))
        if key == "uses"
    ]
    assert uses
    for name, ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{name}: {ref} is not pinned to a commit"
    for path in WORKFLOWS.glob("*.yml"):
        for line in path.read_text().splitlines():
            if "uses:" in line:
                assert re.search(r"# v\d", line), f"{path.name}: say which tag the SHA is: {line.strip()}"


def test_no_continue_on_error() -> None:
    for path in WORKFLOWS.glob("*.y*ml"):
        assert "continue-on-error" not in path.read_text(), path.name
        assert all(key != "continue-on-error" for key, _ in walk(load_yaml(str(path.relative_to(ROOT)))))


def test_ci_pipeline_order() -> None:
    jobs = ci()["jobs"]
    assert set(jobs) == {"lint", "test", "build", "integration", "security"}
    assert "needs" not in jobs["lint"]
    assert jobs["test"]["needs"] == "lint"
    assert jobs["build"]["needs"] == "test"
    assert jobs["integration"]["needs"] == "build" and jobs["security"]["needs"] == "build"


def test_ci_runs_the_repository_commands() -> None:
    jobs = ci()["jobs"]
    targets = make_targets()
    for job in jobs.values():
        for target_list in re.findall(r"\bmake ((?:[a-z-]+ ?)+)", steps_text(job)):
            for target in target_list.split():
                assert target in targets, f"make {target}: no such Makefile target"
    assert "make lint" in steps_text(jobs["lint"])
    assert "scripts/validate_deploy.py" in steps_text(jobs["lint"])
    test = steps_text(jobs["test"])
    assert "make test" in test and "--cov" in test


def test_build_pushes_sha_and_latest_to_ghcr_only_from_main() -> None:
    build = ci()["jobs"]["build"]
    assert build["permissions"]["packages"] == "write"
    assert build["env"]["PUSH"] == "${{ github.event_name == 'push' && github.ref == 'refs/heads/main' }}"
    images = {entry["image"] for entry in build["strategy"]["matrix"]["include"]}
    assert images == {"gateway", "trainer", "triton-cpu", "puller"}
    for entry in build["strategy"]["matrix"]["include"]:
        assert (ROOT / entry["dockerfile"]).is_file()
    text = steps_text(build)
    assert "${GITHUB_SHA}" in text and ":latest" in text
    assert ci()["env"]["IMAGE_PREFIX"].startswith("ghcr.io/")


def test_integration_runs_compose_with_the_cpu_override_and_the_smoke_test() -> None:
    text = steps_text(ci()["jobs"]["integration"])
    assert "docker compose -f docker-compose.yml -f docker-compose.cpu.yml up" in text
    assert "scripts/smoke_test.py --url http://localhost:8000 --wait" in text
    assert (ROOT / "scripts/smoke_test.py").is_file()


def test_security_fails_on_critical_findings() -> None:
    steps = ci()["jobs"]["security"]["steps"]
    trivy = [s["with"] for s in steps if "trivy-action" in s.get("uses", "")]
    assert {t["scan-type"] for t in trivy} == {"image", "fs"}
    for scan in trivy:
        assert scan["severity"] == "CRITICAL" and scan["exit-code"] == "1"
    audit = steps_text(ci()["jobs"]["security"])
    assert "pip-audit" in audit and "constraints.txt" in audit


def test_cd_sets_the_overlay_images_that_argocd_syncs() -> None:
    workflow = cd()
    triggers: dict[Any, Any] = workflow.get("on") or workflow[True]  # type: ignore[index]  # YAML 1.1: on → True
    assert triggers["workflow_run"]["branches"] == ["main"]
    text = steps_text(workflow["jobs"]["update-overlays"])
    edits = re.findall(r"cd (k8s/[\w/-]+) && kustomize edit set image((?:\s*\\?\s*\"[^\"]+\")+)", text)
    assert edits
    edited = {}
    for folder, images in edits:
        edited[folder] = set(re.findall(r"\"([\w-]+)=", images))
    for folder, names in edited.items():
        declared = {entry["name"] for entry in load_yaml(f"{folder}/kustomization.yaml")["images"]}
        # Every built image the folder uses is rewritten; the gpu overlay keeps NGC's Triton.
        assert names <= declared and declared - names <= {"cats-dogs-triton"}, folder
    argocd_path = load_yaml("k8s/argocd/application.yaml")["spec"]["source"]["path"]
    assert argocd_path in edited
