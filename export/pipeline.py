"""One export: model → checked ONNX → gates → next version of the canonical and the CPU repository.

Everything is written into a staging folder first and moved into the repository only after every
check passed, so a failed parity check, gate or variant gate leaves the repositories untouched.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from contract.model import (
    BASELINE_FILENAME,
    CONFIG_FILENAME,
    LABELS_FILENAME,
    ONNX_FILENAME,
    UNCERTAIN_THRESHOLD_METRIC,
    UNCERTAIN_THRESHOLD_PARAMETER,
    model_dir,
)
from contract.paths import CPU_MODEL_REPOSITORY, MODEL_REPOSITORY
from export import baseline_stats, gate, quantize
from export import cpu_repository as cpu_repo
from export.check_images import DataLocation, LabelledImages, load_split, parity_images, synthetic_images
from export.contract import DEFAULT_MIN_ACCURACY
from export.metadata import ModelFacts, current_git_sha, utc_now
from export.parity import MIN_IMAGES, ParityReport, check_parity
from export.registry_artifacts import publish_export
from export.repository import write_model_file, write_repository_version
from export.source import ModelSource
from export.triton_config import ServingOptions
from export.versions import VersionLog, VersionRecord, next_version, served_version


@dataclass(frozen=True, kw_only=True)
class ExportRequest:
    repository: Path = MODEL_REPOSITORY
    cpu_repository: Path | None = CPU_MODEL_REPOSITORY  # None: do not derive the CPU repository
    artifact_dir: Path | None = None  # also copy the version's files + export.json here (DVC output)
    data: DataLocation = field(default_factory=DataLocation)
    serving: ServingOptions = field(default_factory=ServingOptions)
    cpu: cpu_repo.CpuOptions = field(default_factory=cpu_repo.CpuOptions)
    min_accuracy: float = DEFAULT_MIN_ACCURACY
    force: bool = False
    int8: bool = False
    fp16: bool = False
    parity_images: int = MIN_IMAGES
    calibration_images: int = 256


@dataclass(frozen=True)
class ExportResult:
    version: int
    model_dir: Path
    onnx_path: Path
    parity: ParityReport
    decision: gate.GateDecision
    variants: dict[str, quantize.VariantReport]
    cpu_model_dir: Path | None


def _facts(source: ModelSource, version: int) -> ModelFacts:
    meta = source.meta
    return ModelFacts(
        class_names=tuple(meta.class_names),
        image_size=int(meta.image_size),
        mean=tuple(meta.mean),
        std=tuple(meta.std),
        architecture=meta.model_name,
        mlflow_model_name=source.mlflow_model_name,
        model_version_mlflow=source.mlflow_version,
        mlflow_run_id=source.mlflow_run_id,
        manifest_sha256=meta.manifest_sha256,
        git_sha=meta.git_sha,
        export_git_sha=current_git_sha(),
        triton_model_version=version,
        exported_at=utc_now(),
    )


def _gate(
    onnx_path: Path,
    test: LabelledImages | None,
    source: ModelSource,
    req: ExportRequest,
    mdir: Path,
    log: VersionLog,
) -> gate.GateDecision:
    num_classes = len(source.meta.class_names)
    metrics = (
        gate.measure(onnx_path, test, num_classes)
        if test is not None
        else gate.mlflow_metrics(source.mlflow_run_id)
    )
    version = served_version(mdir, log)
    served: gate.Served | None = None
    if version is not None and test is not None:
        # The served version's recorded figure may come from another data set (a retrain on new
        # photos): measure it again on the candidate's test images, as training.evaluate does.
        served = gate.remeasure_served(
            mdir / str(version) / ONNX_FILENAME, version, test, req.data, num_classes
        )
    elif version is not None:
        record = log.get(version)
        recorded = record.test_metrics.get("test_accuracy") if record is not None else None
        if recorded is not None:
            served = gate.Served(
                version,
                recorded,
                "recorded figures, not re-measured: without a cached test split the two may come "
                "from different images",
            )
    return gate.decide(metrics, min_accuracy=req.min_accuracy, served=served)


def refresh_artifacts(repository: Path, version: int, artifact_dir: Path) -> None:
    """Rewrite ``artifact_dir`` from an existing version (DVC removes stage outputs before a run)."""
    mdir = model_dir(repository)
    _write_artifacts(mdir / str(version), artifact_dir, VersionLog.load(mdir).get(version))


def _write_artifacts(version_dir: Path, artifact_dir: Path, record: VersionRecord | None) -> None:
    """Replace ``artifact_dir`` with the new version's files and a summary (the DVC stage's output)."""
    artifact_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-artifacts-", dir=artifact_dir.parent))
    try:
        for item in version_dir.iterdir():
            shutil.copy2(item, staging / item.name)
        summary = {"model_dir": str(version_dir.parent), **(asdict(record) if record else {})}
        (staging / "export.json").write_text(json.dumps(summary, indent=2) + "\n")
        if artifact_dir.exists():
            shutil.rmtree(artifact_dir)
        staging.rename(artifact_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _cpu_variant(int8: quantize.VariantReport, on_test_split: bool, say: Callable[[str], None]) -> str:
    """``--cpu-variant auto``: INT8 (faster on CPU) only when its gate passed on the labelled test split.

    Without that split (``--no-local-data``, no manifest) the variant was compared on parity images
    whose labels mean nothing, so an accuracy drop could not be seen: FP32 is served then.
    """
    failure = quantize.gate_failure(int8)
    if not on_test_split:
        say("CPU repository serves FP32: no labelled test split here to gate the INT8 variant on")
        return "fp32"
    if failure is not None:
        say(f"CPU repository serves FP32: the INT8 variant failed its gate ({failure})")
        return "fp32"
    say("CPU repository serves INT8: its gate passed on the test split")
    return "int8"


def already_served(source: ModelSource, repository: Path) -> int | None:
    """The served Triton version if it was exported from the same MLflow run, else None.

    Exporting it again would only add a duplicate version that pushes the real previous one out of
    ``num_versions`` (and out of reach of a rollback).
    """
    if not source.mlflow_run_id:
        return None
    mdir = model_dir(repository)
    log = VersionLog.load(mdir)
    served = served_version(mdir, log)
    record = log.get(served) if served is not None else None
    return served if record is not None and record.mlflow_run_id == source.mlflow_run_id else None


def run_export(source: ModelSource, req: ExportRequest, say: Callable[[str], None] = print) -> ExportResult:
    size = int(source.meta.image_size)
    class_names = tuple(source.meta.class_names)
    mdir = model_dir(req.repository)
    versions = VersionLog.load(mdir)
    version = next_version(mdir, versions)
    facts = _facts(source, version)
    req.repository.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-staging-", dir=req.repository.parent))
    try:
        vdir = staging / str(version)
        vdir.mkdir()
        onnx_path = vdir / ONNX_FILENAME
        say(f"exporting {source.description} ({facts.architecture}, {size}px) as Triton version {version}")
        write_model_file(source.model, facts, onnx_path)

        checks = parity_images(size, req.parity_images, req.data)
        parity = check_parity(source.model, onnx_path, checks.images)
        say(f"{parity} [{checks.source}]")

        test = load_split("test", size, location=req.data, class_names=class_names)
        decision = _gate(onnx_path, test, source, req, mdir, versions)
        if not decision.passed and not req.force:
            raise gate.GateRefusedError(f"promotion gate refused version {version}: {decision.summary()}")
        say(("gate FORCED: " if not decision.passed else "gate passed: ") + decision.summary())

        variants: dict[str, quantize.VariantReport] = {}
        variant_data = test if test is not None else checks
        auto = req.cpu.variant == "auto"
        if req.int8 or auto:
            calibration = load_split(
                "train", size, location=req.data, class_names=class_names, limit=req.calibration_images
            )
            calib = (
                calibration.images if calibration is not None else synthetic_images(64, size, seed=99).images
            )
            int8_path = vdir / quantize.VARIANT_FILES["int8"]
            quantize.quantize_int8(onnx_path, int8_path, calib)
            report = quantize.measure_variant("int8", onnx_path, int8_path, variant_data)
            failure = quantize.gate_failure(report)
            if failure is not None and not auto:
                raise quantize.VariantRefusedError(failure)
            say(f"variant {report} [calibrated on {len(calib)} images]")
            variants["int8"] = report
        cpu = req.cpu
        removed_variants: set[str] = set()
        if auto:
            cpu = replace(req.cpu, variant=_cpu_variant(variants["int8"], test is not None, say))
            if cpu.variant != "int8" and not req.int8:
                # An ungated or refused INT8 file must not be served later by a CPU config that
                # says int8 for a newer version (one config covers every loaded version).
                int8_path.unlink()
                removed_variants.add("int8")
        if req.fp16:
            quantize.convert_fp16(onnx_path, vdir / quantize.VARIANT_FILES["fp16"])
            variants["fp16"] = quantize.gate_variant(
                "fp16", onnx_path, vdir / quantize.VARIANT_FILES["fp16"], variant_data
            )
            say(f"variant {variants['fp16']}")

        val = load_split("val", size, location=req.data, class_names=class_names) or checks
        stats = baseline_stats.compute(val, gate.predict(onnx_path, val.images), class_names)
        baseline_stats.write(stats, vdir / BASELINE_FILENAME)

        parameters = baseline_stats.as_parameter(stats)
        # The uncertain-flag threshold chosen on the model's own validation split (training.calibration)
        # travels with it, so the gateway flags by this model's calibration, not a global constant.
        threshold = gate.mlflow_metric(source.mlflow_run_id, UNCERTAIN_THRESHOLD_METRIC)
        if threshold is not None:
            parameters[UNCERTAIN_THRESHOLD_PARAMETER] = f"{threshold:.4f}"
        metrics = decision.metrics
        record = VersionRecord(
            triton_version=version,
            mlflow_model_name=source.mlflow_model_name,
            mlflow_version=source.mlflow_version,
            mlflow_run_id=source.mlflow_run_id,
            source=source.description,
            exported_at=facts.exported_at,
            test_metrics=metrics.as_dict() if metrics else {},
            metrics_source=metrics.source if metrics else "none",
            variants={
                name: report.as_dict() | ({"file": None} if name in removed_variants else {})
                for name, report in variants.items()
            },
            forced=not decision.passed,
        )
        written = write_repository_version(
            vdir,
            facts,
            req.repository,
            record,
            cpu_repository=req.cpu_repository,
            serving=req.serving,
            cpu=cpu,
            parameters=parameters,
            say=say,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    if req.artifact_dir is not None:
        _write_artifacts(written.version_dir, req.artifact_dir, record)
    publish_export(mdir, record, say)  # the registry is how clusters get the model
    cpu_dir = written.cpu_model_dir
    say(
        f"wrote {written.version_dir} (+ {CONFIG_FILENAME}, {LABELS_FILENAME}, versions.json)"
        + (f"; CPU repository {cpu_dir}" if cpu_dir else "")
    )
    return ExportResult(
        version, mdir, written.version_dir / ONNX_FILENAME, parity, decision, variants, cpu_dir
    )
