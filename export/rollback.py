"""``python -m export.rollback`` (``make rollback``): serve the previous model version again.

What it does, in order, and says so:
1. moves the newest version directory of the canonical repository out of it (into
   ``artifacts/retired_versions/``, restorable) and marks it rolled back in versions.json;
2. rewrites the canonical config's ``parameters`` to describe the version now served (read from
   that version's ONNX metadata) — its input shape, and which versions Triton loads: only those of
   that shape —, and regenerates the derived CPU repository with its options kept;
3. moves the MLflow alias ``champion`` back to the MLflow version mapped to the version now served.

A local Triton serving the default CPU repository (``make triton`` / ``make up``) is told to load the
model again, so the previous version is live when the command returns.
Exit codes: 0 rolled back; 1 nothing to roll back to; 3 repository rolled back but the MLflow alias
could not be moved.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from contract.model import (
    BASELINE_FILENAME,
    CONFIG_FILENAME,
    DRIFT_BASELINE_PARAMETER,
    MODEL_NAME,
    ONNX_FILENAME,
    model_dir,
)
from contract.paths import CPU_MODEL_REPOSITORY, MODEL_REPOSITORY, RETIRED_VERSIONS_DIR
from export import baseline_stats
from export.cpu_repository import CpuOptions
from export.metadata import ModelFacts, read_onnx_metadata, utc_now
from export.triton_config import describe_version, read_config, set_parameters, write_config
from export.versions import (
    VersionLog,
    VersionRecord,
    loadable_count,
    served_version,
    version_dirs,
    version_image_size,
)
from imaging.cli import ArgumentParser
from training.registry import CHAMPION, REGISTERED_MODEL_NAME


class RollbackError(RuntimeError):
    """Nothing to roll back to."""


@dataclass(frozen=True)
class RollbackResult:
    retired_version: int
    retired_to: Path
    served_version: int
    served_record: VersionRecord | None
    cpu_model_dir: Path | None


def cpu_options_from(cpu_model_dir: Path) -> CpuOptions:
    """The options the existing derived repository was built with, so a rebuild keeps them."""
    config_path = cpu_model_dir / CONFIG_FILENAME
    if not config_path.is_file():
        return CpuOptions()
    config = read_config(config_path)
    params = {k: v.string_value for k, v in config.parameters.items()}
    count = config.instance_group[0].count if config.instance_group else 1
    if params.get("cpu_layout", "").startswith("auto"):
        # Chosen for the model then newest: measured again for the version that now is.
        instances, threads = None, None
    else:
        instances, threads = max(count, 1), int(params.get("ort_intra_op_threads") or 0)
    return CpuOptions(
        instance_count=instances,
        intra_op_threads=threads,
        execution_env_path=params.get("EXECUTION_ENV_PATH", ""),
        variant=params.get("precision", "fp32") or "fp32",
    )


def rollback_repository(
    repository: Path = MODEL_REPOSITORY,
    cpu_repository: Path | None = CPU_MODEL_REPOSITORY,
    retired_dir: Path = RETIRED_VERSIONS_DIR,
) -> RollbackResult:
    from export import cpu_repository as cpu_repo

    mdir = model_dir(repository)
    log = VersionLog.load(mdir)
    newest = served_version(mdir, log)
    if newest is None:
        raise RollbackError(f"no model version in {mdir}; nothing to roll back")
    records = {v: log.get(v) for v in version_dirs(mdir)}
    older = [v for v, r in records.items() if v < newest and (r is None or r.active)]
    if not older:
        raise RollbackError(
            f"version {newest} is the only version in {mdir}; there is no previous version to return to"
        )
    previous = older[-1]
    try:  # read before anything moves, so a bad previous version leaves everything as it was
        facts = ModelFacts.from_strings(read_onnx_metadata(mdir / str(previous) / ONNX_FILENAME))
    except (OSError, ValueError) as exc:
        raise RollbackError(f"version {previous} cannot be served again: {exc}") from exc
    cpu_options = cpu_options_from(cpu_repository / MODEL_NAME) if cpu_repository is not None else None

    retired_to = retired_dir / mdir.name / f"{newest}-{utc_now().replace(':', '')}"
    retired_to.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(mdir / str(newest)), str(retired_to))
    config = read_config(mdir / CONFIG_FILENAME)
    describe_version(config, facts)
    # Load only the versions that take the restored shape (see export.versions.loadable_count).
    wanted = log.num_versions or config.version_policy.latest.num_versions or 1
    sizes = [version_image_size(mdir, v) for v in reversed(version_dirs(mdir))]
    config.version_policy.latest.num_versions = loadable_count(sizes, wanted)
    baseline = baseline_stats.read(mdir / str(previous) / BASELINE_FILENAME)
    if baseline is not None:
        set_parameters(config, baseline_stats.as_parameter(baseline))
    else:
        config.parameters.pop(DRIFT_BASELINE_PARAMETER, None)
    write_config(config, mdir / CONFIG_FILENAME)
    record = log.get(newest) or VersionRecord(triton_version=newest)
    record.rolled_back_at = utc_now()
    log.put(record)
    log.save()

    cpu_dir = None
    if cpu_repository is not None:
        cpu_dir = cpu_repo.build(mdir, cpu_repository, cpu_options)
    return RollbackResult(newest, retired_to, previous, log.get(previous), cpu_dir)


def move_champion(record: VersionRecord | None, alias: str = CHAMPION) -> str:
    """Point ``alias`` at the MLflow version mapped to ``record``; returns what was done."""
    if record is None or not record.mlflow_version:
        return f"MLflow alias {alias!r} left as it is: the version now served has no MLflow version recorded"
    from export.source import mlflow_client

    name = record.mlflow_model_name or REGISTERED_MODEL_NAME
    client = mlflow_client()
    try:
        before = client.get_model_version_by_alias(name, alias).version
    except Exception:  # no such alias yet: moving it is still right
        before = None
    client.set_registered_model_alias(name, alias, record.mlflow_version)
    return f"MLflow alias {alias!r} of {name!r}: version {before} → {record.mlflow_version}"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m export.rollback",
        description="Retire the newest model version so Triton serves the previous one again, "
        "and move the MLflow 'champion' alias back.",
        epilog="""examples:
  python -m export.rollback          # then `make reload` to serve it (`make rollback` does both)
  python -m export.rollback --help""",
    )
    p.add_argument(
        "--repository", type=Path, default=MODEL_REPOSITORY, help="canonical Triton repository root"
    )
    p.add_argument(
        "--cpu-repository",
        type=Path,
        default=CPU_MODEL_REPOSITORY,
        help="derived CPU repository root to regenerate",
    )
    p.add_argument("--no-cpu-repository", action="store_true", help="leave the derived CPU repository alone")
    p.add_argument(
        "--retired-dir", type=Path, default=RETIRED_VERSIONS_DIR, help="where retired versions are moved"
    )
    p.add_argument("--no-mlflow", action="store_true", help="do not move the MLflow champion alias")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = rollback_repository(
            args.repository, None if args.no_cpu_repository else args.cpu_repository, args.retired_dir
        )
    except RollbackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    record = result.served_record
    origin = (
        f" (MLflow {record.mlflow_model_name} v{record.mlflow_version})"
        if record and record.mlflow_version
        else ""
    )
    print(f"rolled back: Triton version {result.retired_version} retired to {result.retired_to}")
    print(f"now served: Triton version {result.served_version}{origin}")
    if result.cpu_model_dir is not None:
        print(f"regenerated CPU repository {result.cpu_model_dir}")
        # Rollback only writes files; the running server is the serving package's business.
        print("next: `make reload` makes a running local Triton serve it (`make rollback` runs it)")
    if args.no_mlflow:
        print("MLflow alias left as it is (--no-mlflow)")
        return 0
    try:
        print(move_champion(record))
    except Exception as exc:  # the repository is already rolled back; say exactly what is left to do
        print(f"error: could not move the MLflow alias: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
