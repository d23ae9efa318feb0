"""Promote a registered model version: move the alias, then restart Triton so its pods pull it.

    python -m export.promote --version 7                      # alias champion -> v7, rollout restart
    python -m export.promote --version 7 --no-restart         # only the alias (e.g. CD restarts later)

Every Triton pod's init container pulls what the alias names when the pod starts (export.pull), so a
promotion is exactly these two steps; a rollback is the same command with the previous version.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from export.registry_artifacts import TAG_TRITON_VERSION
from training.registry import CHAMPION, REGISTERED_MODEL_NAME, tracking_uri


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.promote", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", required=True, help="the registered model version to promote")
    parser.add_argument("--alias", default=CHAMPION, help=f"alias to move (default {CHAMPION})")
    parser.add_argument("--model-name", default=REGISTERED_MODEL_NAME, help="registered model name")
    parser.add_argument("--namespace", default=os.environ.get("NAMESPACE", "cats-dogs"), help="k8s namespace")
    parser.add_argument("--no-restart", action="store_true", help="move the alias only; no rollout restart")
    args = parser.parse_args(argv)

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri())
    try:
        mv = client.get_model_version(args.model_name, args.version)
        if TAG_TRITON_VERSION not in (mv.tags or {}):
            print(
                f"error: {args.model_name} v{args.version} has no Triton artifacts (export it first)",
                file=sys.stderr,
            )
            return 1
        client.set_registered_model_alias(args.model_name, args.alias, args.version)
    except MlflowException as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    triton_version = mv.tags[TAG_TRITON_VERSION]
    print(f"alias {args.alias} -> {args.model_name} v{args.version} (Triton version {triton_version})")
    if args.no_restart:
        return 0
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        print(
            "error: kubectl not found; restart Triton yourself: kubectl rollout restart deployment/triton",
            file=sys.stderr,
        )
        return 3
    cmd = [kubectl, "-n", args.namespace, "rollout", "restart", "deployment/triton"]
    return subprocess.run(cmd, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
