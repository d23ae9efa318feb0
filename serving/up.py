"""``make up``: from nothing to a served model in one command.

1. If no model has been exported yet, or photos are given:
   - ``--source bundled`` (default): register the real-photo model shipped in ``models/bundled/``
     in the local MLflow registry and export it through the normal export path;
   - ``--source synthetic``: the offline synthetic set and the quick recipe (tests, CI);
   - ``--source download`` or a photo folder: ingest → preprocess → train with the real-photo
     recipe (``configs/pets.yaml``; ``--config`` overrides) → evaluate → export.
   Each step is its own ``python -m`` command, printed before it runs.
2. Start Triton on the derived CPU repository (or, when one already runs and a model was just
   exported, make it load the new version), then the gateway, both in the background with PID
   files under ``run/`` (``make stop`` stops them).
3. Print the URL, the model that is served and its measured accuracy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from contract.model import (
    ARCHITECTURE_PARAMETER,
    CONFIG_FILENAME,
    EXPORTED_AT_PARAMETER,
    MLFLOW_MODEL_NAME_PARAMETER,
    MLFLOW_RUN_ID_PARAMETER,
    MLFLOW_VERSION_PARAMETER,
    MODEL_NAME,
    VERSIONS_FILENAME,
)
from contract.paths import CPU_MODEL_REPOSITORY, MODEL_REPOSITORY, PROJECT_ROOT, RUN_DIR
from imaging.cli import ArgumentParser
from serving.gateway_process import GatewayOptions, start_gateway
from serving.processes import read_pid
from serving.triton import TritonLauncher, TritonOptions, reload_model

DEFAULT_QUICK_CONFIG = PROJECT_ROOT / "configs" / "quick.yaml"
DEFAULT_REAL_CONFIG = PROJECT_ROOT / "configs" / "pets.yaml"
BUNDLED = "bundled"
SYNTHETIC = "synthetic"


def bundled_summary() -> str:
    from training.bundled import BundleError, describe, read_card

    try:
        return describe(read_card())
    except (BundleError, OSError, ValueError) as exc:
        return f"unavailable ({exc})"


def recipe_for(source: str, config: Path | None) -> Path:
    """The training config: the one given, else the quick recipe for synthetic shapes, else the real one.

    Real photos with the 8-epoch 64 px quick recipe give a toy model; synthetic shapes with the
    real recipe only cost time.
    """
    if config is not None:
        return config
    return DEFAULT_QUICK_CONFIG if source == SYNTHETIC else DEFAULT_REAL_CONFIG


def exported_versions(repository: Path, model: str) -> list[int]:
    model_dir = repository / model
    if not (model_dir / CONFIG_FILENAME).is_file():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def config_image_size(config: Path) -> int | None:
    """The training config's ``image_size``: the preprocess cache must be built at that size."""
    import yaml

    try:
        data = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None  # the trainer reports a broken config with a better message
    size = data.get("image_size") if isinstance(data, dict) else None
    return int(size) if isinstance(size, int) and size > 0 else None


def pipeline_steps(
    source: str, config: Path, train_only: list[Path] | None = None
) -> list[tuple[str, list[str]]]:
    py = sys.executable
    if source == BUNDLED:
        # No training: the shipped checkpoint goes through the same registry → export path.
        return [
            ("register", [py, "-m", "training.bundled", "register"]),
            ("export", [py, "-m", "export", "--alias", "champion", "--no-local-data"]),
        ]
    size = config_image_size(config)
    preprocess = [py, "-m", "training.data", "preprocess"] + (["--image-size", str(size)] if size else [])
    extra = [arg for folder in train_only or [] for arg in ("--train-only", str(folder))]
    return [
        ("ingest", [py, "-m", "training.data", "ingest", "--source", source, *extra]),
        ("preprocess", preprocess),
        ("train", [py, "-m", "training.train", "--config", str(config)]),
        ("evaluate", [py, "-m", "training.evaluate"]),
        ("export", [py, "-m", "export"]),
    ]


def run_pipeline(source: str, config: Path, train_only: list[Path] | None = None) -> None:
    for name, command in pipeline_steps(source, config, train_only):
        print(f"==> {name}: {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        result = subprocess.run(command, check=False, cwd=PROJECT_ROOT)
        if result.returncode != 0:
            raise RuntimeError(f"step '{name}' failed (exit {result.returncode}); see its output above")
        print(f"    {name} done in {time.monotonic() - started:.0f} s", flush=True)


def gateway_health(url: str, deadline_s: float = 60.0) -> dict[str, Any]:
    """The gateway's /health once it says ready, waiting up to ``deadline_s``: a running gateway under
    load (or one whose Triton is restarting) may answer 503 for a few seconds and then recover."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                body: dict[str, Any] = json.loads(response.read())
            return body
        except (urllib.error.URLError, OSError) as exc:
            if time.monotonic() >= deadline:
                detail = f"the gateway at {url} was not healthy within {deadline_s:g} s: {exc}"
                raise TimeoutError(detail) from exc
            time.sleep(0.5)


def describe_origin(parameters: dict[str, str]) -> str:
    name = parameters.get(MLFLOW_MODEL_NAME_PARAMETER) or "?"
    version = parameters.get(MLFLOW_VERSION_PARAMETER) or "?"
    run = parameters.get(MLFLOW_RUN_ID_PARAMETER) or "?"
    arch = parameters.get(ARCHITECTURE_PARAMETER) or "?"
    when = parameters.get(EXPORTED_AT_PARAMETER) or "?"
    return f"MLflow model {name} version {version} (run {run}, {arch}), exported {when}"


def served_figures(canonical_dir: Path, version: object) -> str:
    """The served version's measured test accuracy from the export's version log, for the banner."""
    try:
        log = json.loads((canonical_dir / VERSIONS_FILENAME).read_text())
    except (OSError, ValueError):
        return "unknown (no versions.json)"
    for record in log.get("versions", []):
        if str(record.get("triton_version")) == str(version):
            metrics = record.get("test_metrics") or {}
            accuracy, n = metrics.get("test_accuracy"), metrics.get("test_images")
            if accuracy is None:
                return "not measured"
            where = (
                "recorded with the model in MLflow"
                if record.get("metrics_source") == "mlflow-run"
                else f"on {int(n or 0)} test images of this machine's data"
            )
            return f"test accuracy {accuracy:.1%} ({where})"
    return f"unknown (version {version} not in versions.json)"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m serving.up",
        description="Train and export a model if needed, then serve it.",
        epilog="""examples:
  python -m serving.up                         # synthetic data, offline
  python -m serving.up --source path/to/photos # a folder of cat/ and dog/""",
    )
    parser.add_argument(
        "--source",
        default=BUNDLED,
        help="'bundled' (the real-photo model in models/bundled/, no training), 'synthetic' (offline "
        "shapes + quick recipe), 'download' (PetImages) or a folder of cat/ and dog/ photos; a download or "
        "folder trains a new model even if one is exported",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"training config (default: {DEFAULT_QUICK_CONFIG.relative_to(PROJECT_ROOT)} for synthetic, "
        f"{DEFAULT_REAL_CONFIG.relative_to(PROJECT_ROOT)} for real photos)",
    )
    parser.add_argument(
        "--train-only",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="extra photo folder that only enters the train split (repeatable; see training.data ingest)",
    )
    parser.add_argument("--retrain", action="store_true", help="train and export even if a model is exported")
    parser.add_argument(
        "--repository", type=Path, default=CPU_MODEL_REPOSITORY, help="CPU model repository to serve"
    )
    parser.add_argument("--model", default=MODEL_NAME, help="Triton model name")
    parser.add_argument("--port", type=int, default=8000, help="gateway port")
    parser.add_argument("--triton-grpc-port", type=int, default=8001, help="Triton gRPC port")
    parser.add_argument("--triton-http-port", type=int, default=8010, help="Triton HTTP port")
    parser.add_argument("--triton-metrics-port", type=int, default=8002, help="Triton metrics port")
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR, help="where PID files and logs go")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    versions = exported_versions(args.repository, args.model)
    photos = args.source not in (BUNDLED, SYNTHETIC)
    build = args.retrain or not versions or photos
    try:
        if build and args.source == BUNDLED:
            print(
                "==> serving the bundled real-photo model (models/bundled/; SOURCE=synthetic or "
                "DATA_DIR=<photos> to train instead)",
                flush=True,
            )
            run_pipeline(args.source, DEFAULT_REAL_CONFIG)
            versions = exported_versions(args.repository, args.model)
        elif build:
            why = "requested" if args.retrain or versions else "no exported model yet"
            if photos:
                why = f"training on {args.source}"
            config = recipe_for(args.source, args.config)
            print(f"==> training a model ({why}) with recipe {config}", flush=True)
            if not config.is_file():
                raise RuntimeError(f"training config {config} not found")
            run_pipeline(args.source, config, args.train_only)
            versions = exported_versions(args.repository, args.model)
        if build and not versions:
            raise RuntimeError(f"export finished but {args.repository}/{args.model} has no version")
        if not build:
            print(
                f"==> using the exported model (versions {versions} in {args.repository}); "
                "--retrain to train anew"
            )

        triton = TritonOptions(
            repository=args.repository,
            model=args.model,
            grpc_port=args.triton_grpc_port,
            http_port=args.triton_http_port,
            metrics_port=args.triton_metrics_port,
            log_file=args.run_dir / "triton.log",
            pid_file=args.run_dir / "triton.pid",
        )
        launcher = TritonLauncher(triton)
        running = read_pid(triton.pid_file)
        if running is not None and build:
            # The export only wrote files: the server loads the new version when told to.
            print(f"==> Triton already running (pid {running}); reloading {args.model!r}", flush=True)
            reload_model(triton)
        elif running is not None:
            print(f"==> Triton already running (pid {running}); reusing it")
        else:
            print("==> starting Triton", flush=True)
            launcher.start()
        gateway = GatewayOptions(
            port=args.port,
            triton_url=triton.grpc_url,
            model_name=args.model,
            log_file=args.run_dir / "gateway.log",
            pid_file=args.run_dir / "gateway.pid",
        )
        running = read_pid(gateway.pid_file)
        if running is not None:
            print(f"==> gateway already running (pid {running}); reusing it")
        else:
            print("==> starting the gateway", flush=True)
            start_gateway(gateway)
        health = gateway_health(gateway.url)
    except (RuntimeError, TimeoutError, FileNotFoundError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    model = health.get("model") or {}
    print()
    print(f"Serving at      {gateway.url}  (upload page: open it in a browser; API: {gateway.url}/docs)")
    print(f"Model           {model.get('name')} version {model.get('version')} (Triton)")
    print(f"Came from       {describe_origin(model.get('parameters') or {})}")
    print(f"Measured        {served_figures(MODEL_REPOSITORY / args.model, model.get('version'))}")
    precision = (model.get("parameters") or {}).get("precision", "fp32").upper()
    print(f"Precision       {precision} on CPU (the export serves INT8 only when its gate passed)")
    if args.source == BUNDLED:
        print(f"Bundled model   {bundled_summary()}")
    print(f"Triton          gRPC {triton.grpc_url}, HTTP {triton.http_url}, metrics {triton.metrics_url}")
    print(f"Logs            {triton.log_file}, {gateway.log_file}")
    print("Try             make smoke-test   ·   stop with: make stop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
