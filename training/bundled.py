"""The model that ships with the repository, so a fresh clone serves a real cats-vs-dogs model.

    python -m training.bundled make --checkpoint artifacts/checkpoints/last.pt --card card.json
    python -m training.bundled register          # what `make up` does on a fresh machine
    python -m training.bundled show

Why a bundled model: without photos a new user would otherwise get a model trained on synthetic
shapes that does not know what a cat looks like. The shipped file is an ordinary self-describing
checkpoint (:mod:`training.checkpoint`) whose floating-point weights are stored as float16 — half
the repository size; every figure in its card was measured on *this* file, after the rounding.

``register`` puts it into the local MLflow registry like any trained model — a run with its
config, metrics and provenance, a registered version tagged ``bundled`` — and moves ``champion``
to it only when there is no champion yet, so the normal export path (parity gate, promotion gate,
Triton repository) is what serves it. Registering twice reuses the version (matched by sha256).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from training import registry
from training.checkpoint import FORMAT_VERSION, load_checkpoint

BUNDLED_DIR = registry.PROJECT_ROOT / "models" / "bundled"
CHECKPOINT_FILE = "model.pt"
CARD_FILE = "model.json"
BUNDLED_TAG = "bundled"


class BundleError(RuntimeError):
    """The bundled model is missing or does not match its card."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_card(bundle_dir: Path = BUNDLED_DIR) -> dict[str, Any]:
    card_path = bundle_dir / CARD_FILE
    checkpoint = bundle_dir / CHECKPOINT_FILE
    if not card_path.is_file() or not checkpoint.is_file():
        raise BundleError(f"no bundled model in {bundle_dir} (expected {CHECKPOINT_FILE} and {CARD_FILE})")
    card: dict[str, Any] = json.loads(card_path.read_text())
    actual = sha256_of(checkpoint)
    if card.get("checkpoint_sha256") != actual:
        raise BundleError(
            f"{checkpoint} does not match its card (sha256 {actual[:12]}…, card says "
            f"{str(card.get('checkpoint_sha256'))[:12]}…); re-run `python -m training.bundled make`"
        )
    return card


def make_bundle(checkpoint: Path, card_extra: dict[str, Any], bundle_dir: Path = BUNDLED_DIR) -> Path:
    """Write ``bundle_dir/model.pt`` (float16 weights) and ``model.json`` (provenance + figures)."""
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if payload.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{checkpoint}: not a training.checkpoint file of format {FORMAT_VERSION}")
    # Integer buffers (BatchNorm's num_batches_tracked) stay as they are; load_state_dict casts back.
    payload["model_state"] = {
        k: (v.half() if v.is_floating_point() else v) for k, v in payload["model_state"].items()
    }
    bundle_dir.mkdir(parents=True, exist_ok=True)
    target = bundle_dir / CHECKPOINT_FILE
    tmp = target.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(target)
    load_checkpoint(target)  # the shipped file must load as an ordinary checkpoint
    card = {
        "name": payload.get("config", {}).get("run_name") or payload["model_name"],
        "checkpoint": CHECKPOINT_FILE,
        "checkpoint_sha256": sha256_of(target),
        "weights_dtype": "float16",
        "architecture": payload["model_name"],
        "image_size": payload["image_size"],
        "git_sha": payload.get("git_sha"),
        "manifest_sha256": payload.get("manifest_sha256"),
        "best_epoch": payload.get("epoch"),
        "trained_mlflow_run_id": payload.get("mlflow_run_id"),
        **card_extra,
    }
    (bundle_dir / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return target


def _flat_metrics(card: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for split in ("val", "test"):
        for key, value in (card.get("metrics", {}).get(split) or {}).items():
            if isinstance(value, int | float):
                out[f"{split}_{key}"] = float(value)
    for key, value in (card.get("calibration") or {}).items():
        if isinstance(value, int | float):
            out[f"calibration_{key}"] = float(value)
    return out


def _existing_version(client: Any, sha: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name='{registry.REGISTERED_MODEL_NAME}'")
    except MlflowException:
        return None
    for version in versions:
        if (version.tags or {}).get("bundled_sha256") == sha:
            return version
    return None


def register(bundle_dir: Path = BUNDLED_DIR, say: Any = print) -> str:
    """Register the bundled model (once); ``champion`` moves to it only when there is none."""
    import mlflow

    from training.train import log_model  # heavy (mlflow.pytorch); only needed here

    card = read_card(bundle_dir)
    checkpoint = bundle_dir / CHECKPOINT_FILE
    client = registry.get_client()
    found = _existing_version(client, card["checkpoint_sha256"])
    if found is not None:
        version = str(found.version)
        say(f"bundled model already registered as {registry.REGISTERED_MODEL_NAME} version {version}")
    else:
        model, meta = load_checkpoint(checkpoint)
        tags = {
            BUNDLED_TAG: "true",
            "bundled_name": str(card.get("name")),
            "bundled_sha256": card["checkpoint_sha256"],
            "git_sha": str(card.get("git_sha")),
            "manifest_sha256": str(card.get("manifest_sha256")),
            "data": str(card.get("data", "")),
            "metrics_source": "measured when bundled (models/bundled/model.json), not on this machine's data",
        }
        with mlflow.start_run(run_name=f"bundled-{card.get('name')}", tags=tags) as run:
            mlflow.log_params({k: v for k, v in meta.config.items() if k != "tags"})
            mlflow.log_metrics(_flat_metrics(card))
            mlflow.log_dict(card, "bundled/model.json")
            with tempfile.TemporaryDirectory() as tmp:
                named = Path(tmp) / Path(registry.CHECKPOINT_ARTIFACT).name
                named.write_bytes(checkpoint.read_bytes())
                mlflow.log_artifact(str(named), artifact_path=str(Path(registry.CHECKPOINT_ARTIFACT).parent))
            model_uri = log_model(model, meta.image_size)
            registered = mlflow.register_model(
                model_uri,
                registry.REGISTERED_MODEL_NAME,
                tags={
                    "run_id": run.info.run_id,
                    BUNDLED_TAG: "true",
                    "bundled_sha256": card["checkpoint_sha256"],
                },
            )
        version = str(registered.version)
        say(
            f"registered the bundled model {card.get('name')} as "
            f"{registry.REGISTERED_MODEL_NAME} version {version}"
        )
    if registry.version_by_alias(client, registry.CHAMPION) is None:
        registry.set_alias(client, registry.CHAMPION, version)
        say(f"no champion yet: @champion → version {version}")
    return version


def describe(card: dict[str, Any]) -> str:
    test = (card.get("metrics") or {}).get("test") or {}
    acc = test.get("accuracy")
    n = test.get("n")
    figure = (
        f"{acc:.1%} accuracy on {n} real test photos ({card.get('test_set', 'pets-dev test split')})"
        if acc
        else "no test figure"
    )
    return f"{card.get('name')} ({card.get('architecture')}, {card.get('image_size')} px): {figure}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.bundled",
        description="The model shipped in models/bundled/: make it, register it, show it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    mk = sub.add_parser(
        "make", help="write models/bundled/ from a trained checkpoint and its measured figures"
    )
    mk.add_argument("--checkpoint", type=Path, required=True, help="training.checkpoint file to ship")
    mk.add_argument(
        "--card",
        type=Path,
        required=True,
        help="JSON with the figures and provenance to merge into model.json",
    )
    mk.add_argument("--dir", type=Path, default=BUNDLED_DIR, help="bundle folder")
    reg = sub.add_parser("register", help="register the bundled model in the MLflow registry (idempotent)")
    reg.add_argument("--dir", type=Path, default=BUNDLED_DIR, help="bundle folder")
    show = sub.add_parser("show", help="print the bundled model's card")
    show.add_argument("--dir", type=Path, default=BUNDLED_DIR, help="bundle folder")
    args = parser.parse_args(argv)
    try:
        if args.command == "make":
            path = make_bundle(args.checkpoint, json.loads(args.card.read_text()), args.dir)
            print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {args.dir / CARD_FILE}")
        elif args.command == "register":
            register(args.dir)
        else:
            card = read_card(args.dir)
            print(describe(card))
            print(json.dumps(card, indent=2, sort_keys=True))
    except (BundleError, FileNotFoundError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    raise SystemExit(main())
