"""The derived CPU repository matches the canonical config in everything a client observes."""

from __future__ import annotations

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from export import cpu_repository
from export.cpu_repository import SHARED_FIELDS, CpuOptions, derive_config, mismatches, resolve_layout
from export.pipeline import ExportResult
from export.triton_config import read_config


def test_derived_config_matches_canonical(exported: ExportResult) -> None:
    assert exported.cpu_model_dir is not None
    canonical = read_config(exported.model_dir / "config.pbtxt")
    derived = read_config(exported.cpu_model_dir / "config.pbtxt")
    assert mismatches(canonical, derived) == []
    for field in SHARED_FIELDS:
        assert getattr(derived, field) == getattr(canonical, field), field
    assert (derived.backend, derived.platform) == ("python", "")
    assert [g.kind for g in derived.instance_group] == [mc.ModelInstanceGroup.KIND_CPU]
    assert not derived.optimization.execution_accelerators.gpu_execution_accelerator
    assert derived.parameters["ort_intra_op_threads"].string_value == "1"
    for key, value in canonical.parameters.items():
        assert derived.parameters[key] == value


def test_derived_versions_serve_the_same_bytes(exported: ExportResult) -> None:
    assert exported.cpu_model_dir is not None
    version = str(exported.version)
    for name in ("model.onnx", "model.int8.onnx", "baseline_stats.json"):
        src, dst = exported.model_dir / version / name, exported.cpu_model_dir / version / name
        assert dst.read_bytes() == src.read_bytes()
        assert src.samefile(dst)  # hard link: one file, never two copies drifting apart
    assert (exported.cpu_model_dir / version / "model.py").is_file()
    assert (exported.cpu_model_dir / "labels.txt").read_text() == (
        exported.model_dir / "labels.txt"
    ).read_text()


def test_options_reach_the_derived_config(exported: ExportResult) -> None:
    canonical = read_config(exported.model_dir / "config.pbtxt")
    derived = derive_config(
        canonical, CpuOptions(instance_count=3, intra_op_threads=4, execution_env_path="/env", variant="int8")
    )
    assert derived.instance_group[0].count == 3
    params = {k: v.string_value for k, v in derived.parameters.items()}
    assert params["ort_intra_op_threads"] == "4" and params["EXECUTION_ENV_PATH"] == "/env"
    assert params["onnx_model_filename"] == "model.int8.onnx"
    assert mismatches(canonical, derived) == []


def test_mismatch_is_detected(exported: ExportResult) -> None:
    canonical = read_config(exported.model_dir / "config.pbtxt")
    derived = derive_config(canonical, CpuOptions(instance_count=1, intra_op_threads=1))
    derived.dynamic_batching.max_queue_delay_microseconds += 1
    derived.parameters["class_names"].string_value = '["dog", "cat"]'
    assert mismatches(canonical, derived) == ["dynamic_batching", "parameters[class_names]"]


def test_bad_cpu_options_are_refused() -> None:
    with pytest.raises(ValueError, match="variant"):
        CpuOptions(variant="int4")


def test_an_auto_layout_must_be_resolved_before_deriving(exported: ExportResult) -> None:
    canonical = read_config(exported.model_dir / "config.pbtxt")
    with pytest.raises(ValueError, match="resolve_layout"):
        derive_config(canonical, CpuOptions())


@pytest.mark.parametrize(
    ("latency_ms", "expected"),
    [(5.0, (4, 1)), (cpu_repository.SMALL_MODEL_MS + 1, (1, 4))],
    ids=["small model: one single-thread instance per core", "heavy model: one instance, every core"],
)
def test_auto_layout_follows_the_measured_latency(
    exported: ExportResult, monkeypatch: pytest.MonkeyPatch, latency_ms: float, expected: tuple[int, int]
) -> None:
    monkeypatch.setattr(cpu_repository, "single_thread_latency_ms", lambda *_: latency_ms)
    monkeypatch.setattr(cpu_repository, "available_cores", lambda: 4)
    resolved = resolve_layout(exported.model_dir, CpuOptions())
    assert (resolved.instance_count, resolved.intra_op_threads) == expected
    assert f"{latency_ms:.1f} ms" in resolved.layout_reason
    derived = derive_config(read_config(exported.model_dir / "config.pbtxt"), resolved)
    assert derived.instance_group[0].count == expected[0]
    assert derived.parameters["cpu_layout"].string_value == resolved.layout_reason
    # A layout the user gave is kept as given, and nothing is measured for it.
    monkeypatch.setattr(cpu_repository, "single_thread_latency_ms", lambda *_: pytest.fail("measured"))
    given = CpuOptions(instance_count=3, intra_op_threads=2)
    assert resolve_layout(exported.model_dir, given) is given


def test_single_thread_latency_is_measured_on_the_real_model(exported: ExportResult) -> None:
    size = read_config(exported.model_dir / "config.pbtxt").input[0].dims[0]
    ms = cpu_repository.single_thread_latency_ms(
        exported.model_dir / str(exported.version) / "model.onnx", size
    )
    assert 0 < ms < 10_000
