"""The CPU configuration sweep's pieces: variant repositories, the choosing rule, the CPU probe.

The sweep itself (real Triton + real perf_analyzer over ~15 variants) takes tens of minutes: it
is run by ``make cpu-sweep`` and recorded in docs/benchmarks/CPU_SWEEP.md, not in the test suite.
The perf_analyzer path it uses is exercised by tests/benchmarks/test_perf_analyzer.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import measure, report
from benchmarks.cpu_sweep import (
    Measured,
    Variant,
    apply_rule,
    choose,
    generated_default,
    variant_dir,
    variants,
)
from contract.model import CONFIG_FILENAME, MODEL_NAME
from export.triton_config import read_config
from tests.support.triton import tiny_classifier, write_test_repositories


def test_variant_repository_changes_only_the_swept_settings(tmp_path: Path) -> None:
    cpu_root = write_test_repositories(tmp_path, tiny_classifier())
    source = cpu_root / MODEL_NAME
    before = read_config(source / CONFIG_FILENAME)
    variant = Variant(2, 1, 0, ())

    variant_dir(source, cpu_root, "sweep07", variant)

    got = read_config(cpu_root / "sweep07" / CONFIG_FILENAME)
    assert got.name == "sweep07"
    assert got.instance_group[0].count == 2
    assert got.parameters["ort_intra_op_threads"].string_value == "1"
    assert got.dynamic_batching.max_queue_delay_microseconds == 0
    assert list(got.dynamic_batching.preferred_batch_size) == []
    # Everything else is the generated config, and the generated repository is untouched.
    got.name = before.name
    got.instance_group[0].count = before.instance_group[0].count
    got.parameters["ort_intra_op_threads"].string_value = before.parameters[
        "ort_intra_op_threads"
    ].string_value
    got.dynamic_batching.CopyFrom(before.dynamic_batching)
    assert got == before
    assert read_config(source / CONFIG_FILENAME) == before
    onnx = sorted(source.glob("*/model.onnx"))
    assert onnx and all(
        (cpu_root / "sweep07" / p.relative_to(source)).stat().st_ino == p.stat().st_ino for p in onnx
    )


def _measured(variant: Variant, c1_p99: float, top_img_s: float, failed: bool = False) -> Measured:
    m = Measured(
        variant,
        img_s={1: [50.0], 8: [top_img_s - 10], 16: [top_img_s]},
        p99_ms={1: [c1_p99], 8: [80.0], 16: [100.0]},
    )
    if failed:
        m.failures.append("run 1 c=16: perf_analyzer failed")
    return m


def test_choose_takes_the_fastest_unless_a_lone_request_waits_longer() -> None:
    fast_but_slow_alone = _measured(Variant(1, 2, 5000, (8,)), c1_p99=20.0, top_img_s=300.0)
    quick_alone = _measured(Variant(1, 2, 0, (8,)), c1_p99=10.0, top_img_s=200.0)
    within_slack = _measured(Variant(2, 1, 0, (8,)), c1_p99=12.0, top_img_s=250.0)
    failed = _measured(Variant(2, 1, 500, (8,)), c1_p99=9.0, top_img_s=900.0, failed=True)

    chosen, rule = choose([fast_but_slow_alone, quick_alone, within_slack, failed], [1, 8, 16])

    assert chosen is within_slack
    assert "c=8, 16" in rule and "10.0 ms" in rule  # the best lone p99 among the variants that ran


def test_the_recorded_choice_is_made_again_from_the_recorded_measurements() -> None:
    measured = [
        _measured(Variant(1, 2, 0, (8,)), c1_p99=10.0, top_img_s=200.0),
        _measured(Variant(2, 1, 0, (8,)), c1_p99=11.0, top_img_s=250.0),
    ]
    record = {"concurrency": [1, 8, 16], "variants": [m.as_dict([1, 8, 16]) for m in measured]}
    assert apply_rule(record)["chosen"] == Variant(2, 1, 0, (8,)).label
    assert apply_rule(record)["chosen_flags"].startswith("--cpu-instances 2 --cpu-threads 1")


def test_the_generated_default_is_read_from_the_config_and_is_in_the_grid(tmp_path: Path) -> None:
    cpu_root = write_test_repositories(tmp_path, tiny_classifier())
    variant_dir(cpu_root / MODEL_NAME, cpu_root, "sweep03", Variant(2, 1, 500, (8, 16, 32)))
    assert generated_default(cpu_root / "sweep03") == Variant(2, 1, 500, (8, 16, 32))
    assert Variant(2, 1, 500, (8, 16, 32)) in variants()


def test_cpu_seconds_counts_a_busy_child_process() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 0.6: pass"]
    )
    start = measure.cpu_seconds([child.pid])
    time.sleep(0.4)
    middle = measure.cpu_seconds([child.pid])
    child.wait()
    assert middle - start >= 0.2


def test_cpu_split_says_who_pays_for_each_request() -> None:
    def runs(**ms: float) -> list[dict[str, float]]:
        return [ms, ms, ms]

    res = {
        "matrix": {"baseline": {"16": []}},
        "cpu_per_request": {
            "gateway_fp32": {"16": runs(gateway=4.0, triton=16.0, client=5.0)},
            "triton_fp32": {"16": runs(triton=15.0, client=1.0)},
        },
    }
    split = report.cpu_split(res, 16)
    assert split is not None
    assert split["ratio_machine"] == pytest.approx(16.0 / 25.0)
    assert split["ratio_servers"] == pytest.approx(15.0 / 20.0)
    table = "\n".join(report.cpu_split_lines(res))
    assert "| 16 | 4.00 | 16.00 | 5.00 | 15.00 | 1.00 | 0.64 | 0.75 |" in table
    assert report.cpu_split_lines({"matrix": {"baseline": {"16": []}}}) == []  # older results.json
