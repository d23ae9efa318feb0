"""Write a ready Triton model repository from the MLflow registry: ``python -m export.pull``.

    python -m export.pull --alias champion --dest /models                 # canonical (GPU, NGC image)
    python -m export.pull --alias champion --dest /models --flavor cpu    # python backend (cpu-runtime)
    python -m export.pull --version 7 --dest /models --flavor ort-cpu     # stock NGC image on CPU

It runs as the Triton pod's init container (the KServe storage-initializer pattern): resolve the
alias, download the artifacts export recorded on that model version (export.registry_artifacts),
verify every sha256 against the manifest (whose own sha256 is a registry tag), and only then move
``<dest>/cats_dogs`` into place. Any failure exits 1 with one line saying what is wrong, so the pod
sits in Init:Error with a readable reason instead of Triton starting on an empty repository.

Torch-free on purpose: the puller image carries mlflow-skinny, tritonclient's protobufs and onnx.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.model import CONFIG_FILENAME, MODEL_NAME
from export import ort_cpu
from export.cpu_repository import CpuOptions
from export.cpu_repository import build as build_cpu
from export.registry_artifacts import (
    MANIFEST_FILENAME,
    TAG_ARTIFACT_PATH,
    TAG_MANIFEST_SHA256,
    TAG_RUN_ID,
    TAG_TRITON_VERSION,
    sha256_file,
)
from export.triton_config import read_config, write_config
from training.registry import CHAMPION, REGISTERED_MODEL_NAME

FLAVORS = ("gpu", "cpu", "ort-cpu")
PULLED_FILENAME = "pulled.json"  # inside <dest>/cats_dogs: Triton ignores unknown files there


class PullError(RuntimeError):
    """A one-line reason the repository could not be written."""


@dataclass(frozen=True)
class Pulled:
    model_name: str
    model_version: str
    alias: str
    triton_version: int
    model_dir: Path


def _client(tracking_uri: str) -> Any:
    # MLflow's REST client retries a refused connection with backoff for minutes; an init container
    # should fail fast and let the kubelet retry the pod instead.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    if tracking_uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(tracking_uri.rstrip("/") + "/health", timeout=10):
                pass
        except (OSError, ValueError) as exc:
            raise PullError(f"cannot reach the tracking server {tracking_uri}: {exc}") from exc
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def resolve(client: Any, name: str, alias: str | None, version: str | None) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        if version is not None:
            return client.get_model_version(name, version)
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        what = f"version {version}" if version is not None else f"alias {alias!r}"
        try:
            aliases = sorted(client.get_registered_model(name).aliases)
            known = f"; aliases on {name!r}: {aliases or 'none'}"
        except MlflowException:
            known = f"; no registered model {name!r}"
        raise PullError(f"{what} not found{known} ({exc.error_code})") from exc


def verify(root: Path, manifest_sha: str) -> dict[str, object]:
    """Every file the manifest lists, with its sha256 and size, and nothing it does not list."""
    manifest_path = root / MANIFEST_FILENAME
    if not manifest_path.is_file():
        raise PullError(f"corrupt artifact: {MANIFEST_FILENAME} missing")
    if sha256_file(manifest_path) != manifest_sha:
        raise PullError(f"corrupt artifact: {MANIFEST_FILENAME} does not match the registry's sha256 tag")
    manifest = json.loads(manifest_path.read_text())
    files: dict[str, dict[str, object]] = manifest["files"]
    for rel, facts in sorted(files.items()):
        path = root / rel
        if not path.is_file():
            raise PullError(f"corrupt artifact: {rel} listed in the manifest but not downloaded")
        if path.stat().st_size != facts["bytes"] or sha256_file(path) != facts["sha256"]:
            raise PullError(
                f"corrupt artifact: {rel} sha256 mismatch (expected {str(facts['sha256'])[:12]}…)"
            )
    present = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} - {MANIFEST_FILENAME}
    extra = sorted(present - set(files))
    if extra:
        raise PullError(f"corrupt artifact: files not in the manifest: {extra}")
    return manifest


def _flavor(canonical_dir: Path, flavor: str, out_root: Path) -> Path:
    """``<out_root>/cats_dogs`` in the requested flavor, built from the verified canonical dir."""
    if flavor == "gpu":
        return canonical_dir
    if flavor == "cpu":
        # An explicit layout: the puller image has no onnxruntime to measure the model with, and a
        # pod's CPU limit (ORT_THREADS) is not the node's core count.
        return build_cpu(
            canonical_dir,
            out_root,
            CpuOptions(instance_count=1, intra_op_threads=int(os.environ.get("ORT_THREADS", "2"))),
        )
    target = out_root / MODEL_NAME
    shutil.copytree(canonical_dir, target)
    derived = ort_cpu.derive_config(read_config(canonical_dir / CONFIG_FILENAME))
    problems = ort_cpu.mismatches(read_config(canonical_dir / CONFIG_FILENAME), derived)
    if problems:  # a bug in derive_config, never a user error
        raise RuntimeError(f"ort-cpu config differs from the canonical one in {problems}")
    write_config(derived, target / CONFIG_FILENAME)
    return target


def pull(
    dest: Path,
    *,
    tracking_uri: str,
    name: str = REGISTERED_MODEL_NAME,
    alias: str | None = CHAMPION,
    version: str | None = None,
    flavor: str = "gpu",
) -> Pulled:
    from mlflow.exceptions import MlflowException

    if flavor not in FLAVORS:
        raise PullError(f"flavor must be one of {FLAVORS}, not {flavor!r}")
    client = _client(tracking_uri)
    mv = resolve(client, name, alias, version)
    tags = dict(mv.tags or {})
    missing = [
        t for t in (TAG_ARTIFACT_PATH, TAG_RUN_ID, TAG_TRITON_VERSION, TAG_MANIFEST_SHA256) if t not in tags
    ]
    if missing:
        raise PullError(
            f"{name} v{mv.version} has no Triton artifacts (tags {missing} missing): export it with "
            "`make export-onnx` against this registry"
        )
    dest.mkdir(parents=True, exist_ok=True)
    # Staged inside dest (an emptyDir mount point cannot be renamed, its parent may be read-only),
    # moved into place only when complete and verified.
    staging = Path(tempfile.mkdtemp(prefix=".pull-", dir=dest))
    try:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        try:
            local = Path(
                client.download_artifacts(tags[TAG_RUN_ID], tags[TAG_ARTIFACT_PATH], str(staging / "dl"))
            )
        except (MlflowException, OSError) as exc:
            raise PullError(
                f"cannot download {tags[TAG_ARTIFACT_PATH]} of run {tags[TAG_RUN_ID]}: {exc}"
            ) from exc
        manifest = verify(local, tags[TAG_MANIFEST_SHA256])
        triton_version = int(str(manifest["triton_version"]))
        model_dir = _flavor(local / MODEL_NAME, flavor, staging / "out")
        pulled = {
            "mlflow_model_name": name,
            "mlflow_version": str(mv.version),
            "alias": alias if version is None else None,
            "triton_version": triton_version,
            "flavor": flavor,
            "manifest_sha256": tags[TAG_MANIFEST_SHA256],
        }
        (model_dir / PULLED_FILENAME).write_text(json.dumps(pulled, indent=2) + "\n")
        target = dest / MODEL_NAME
        if target.exists():
            shutil.rmtree(target)
        model_dir.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Pulled(name, str(mv.version), alias or "", triton_version, target)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m export.pull", description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--alias", default=None, help=f"registry alias to pull (default {CHAMPION})")
    which.add_argument("--version", default=None, help="an explicit model version instead of an alias")
    parser.add_argument(
        "--dest", type=Path, required=True, help="repository folder Triton serves (e.g. /models)"
    )
    parser.add_argument(
        "--flavor",
        choices=FLAVORS,
        default="gpu",
        help="gpu: canonical config (onnxruntime_onnx, KIND_GPU); cpu: python backend (cpu-runtime image); "
        "ort-cpu: onnxruntime_onnx on KIND_CPU (stock NGC image)",
    )
    parser.add_argument("--model-name", default=REGISTERED_MODEL_NAME, help="registered model name")
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", ""),
        help="MLflow tracking server (default: $MLFLOW_TRACKING_URI)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.tracking_uri:
        print("error: no tracking server: pass --tracking-uri or set MLFLOW_TRACKING_URI", file=sys.stderr)
        return 2
    alias = None if args.version is not None else (args.alias or CHAMPION)
    try:
        got = pull(
            args.dest,
            tracking_uri=args.tracking_uri,
            name=args.model_name,
            alias=alias,
            version=args.version,
            flavor=args.flavor,
        )
    except PullError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"pulled {got.model_name} v{got.model_version}"
        + (f" (alias {got.alias})" if got.alias else "")
        + f" as Triton version {got.triton_version} ({args.flavor}) into {got.model_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
