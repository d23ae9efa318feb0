"""``python -m benchmarks.suite --quick``: the whole suite on a tiny model, against real servers."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report as report_module
from benchmarks.stack import ModelSpec, derive_without_dynamic_batching, random_checkpoint
from benchmarks.suite import main
from export.contract import CONFIG_FILENAME
from export.metadata import ModelFacts
from export.triton_config import ServingOptions, build_config, read_config, write_config

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SECTIONS = (
    "## Targets",
    "## Serving: baseline design vs gateway + Triton",
    "## Triton dynamic batching on vs off",
    "## Bulk scoring vs Triton direct",
    "## Gateway memory and cold starts",
    "## Served model (the bundled real-photo model)",
    "## ONNX Runtime vs PyTorch eager (in process)",
    "## INT8 vs FP32",
    "## Achieved GFLOP/s vs the CPU's peak",
)


def test_quick_suite_measures_everything_and_writes_the_report(labelled_photos: Path, tmp_path: Path) -> None:
    checkpoint = random_checkpoint(tmp_path / "trained.pt", ModelSpec("simple_cnn", 64, {"width": 8}), seed=3)
    out, charts, work = tmp_path / "BENCHMARKS.md", tmp_path / "charts", tmp_path / "work"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.suite", "--quick", "--images", str(labelled_photos),
         "--out", str(out), "--charts", str(charts), "--work", str(work),
         "--accuracy-checkpoint", str(checkpoint)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]

    results = json.loads((work / "results.json").read_text())
    for target, levels in results["matrix"].items():
        assert sorted(levels) == ["1", "4"], target
        for runs in levels.values():
            assert len(runs) == 3  # medians of 3 interleaved runs
            assert all(r["requests"] > 0 and r["errors"] == 0 and r["infer_per_s"] > 0 for r in runs), target
    # Triton's own counters say dynamic batching batched, and the derived config did not.
    batching = results["batching"]
    assert all(r["server_avg_batch"] == 1.0 for r in batching["no_batching"])
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in batching["dynamic_batching"])
    # Batches of more than one image were executed: Triton's inference count exceeds its execution count.
    assert max(r["server_avg_batch"] or 0.0 for r in batching["dynamic_batching"]) > 1.0, batching
    assert [r["scored"] for r in results["scoring"]["runs"]] == [40, 40, 40]
    assert results["rss"]["points"][-1][0] == 40 and results["rss"]["points"][-1][1] > 10e6
    assert 0.0 <= results["int8"]["accuracy"]["fp32"] <= 1.0
    assert "| 1 |" in results["int8"]["table"]
    # The peak that achieved GFLOP/s are compared with is measured in the run, not assumed.
    gemm = results["gemm"]["gflops"]
    assert set(gemm) == {"NumPy (OpenBLAS)", "torch.mm", "ONNX Runtime MatMul"}
    assert all(len(runs) == 3 and min(runs) > 1.0 for runs in gemm.values())
    peak = max(sorted(runs)[1] for runs in gemm.values())

    report = out.read_text()
    for section in SECTIONS:
        assert section in report
    target_lines = [line for line in report.splitlines() if line.endswith(("✅ |", "❌ |"))]
    # 4 criteria per concurrency level, 2 single, 2 RSS, the served model against its decode bound and
    # against the baseline at the lowest level (img/s and p99)
    assert len(target_lines) == 2 * 4 + 2 + 2 + 1 + 2
    assert "python -m benchmarks.suite --quick" in report and "python -m benchmarks.int8_bench" in report
    assert f"Peak, measured in this run: **{peak:.1f} GFLOP/s**" in report
    for png in ("throughput", "p99_latency", "targets", "gateway_rss", "ort_vs_eager", "served"):
        data = (charts / f"{png}.png").read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 2000
        assert f"charts/{png}.png" in report
    _check_served(results["served"], report)
    _check_rerendered_and_portable(out, charts, work, tmp_path)


def _check_served(served: dict[str, object], report: str) -> None:
    """The bundled model measured through the gateway, the baseline, Triton and the decode-only bound."""
    assert served["checkpoint"] == "models/bundled/model.pt" and served["image_size"] == 96
    matrix = served["matrix"]
    assert isinstance(matrix, dict) and set(matrix) == {
        "gateway",
        "baseline",
        "triton_direct",
        "decode_bound",
    }
    for target, levels in matrix.items():
        assert sorted(levels) == ["1", "4"], target
        for runs in levels.values():
            assert len(runs) == 3
            assert all(r["requests"] > 0 and r["errors"] == 0 and r["infer_per_s"] > 0 for r in runs), target
    stages = served["stages"]
    assert isinstance(stages, dict) and sorted(stages) == ["1", "4"]
    for rows in stages.values():
        assert len(rows) == 3
        for row in rows:  # the gateway's histograms moved during its level: finite, positive means
            assert row["requests"] > 0
            assert all(math.isfinite(row[k]) and row[k] > 0 for k in ("decode_s", "infer_s", "total_s"))
            assert row["decode_s"] + row["infer_s"] <= row["total_s"] <= row["client_avg_s"]
    profile = served["profile"]
    assert isinstance(profile, dict)
    assert profile["error"] or (profile["samples"] > 0 and profile["top"]), profile
    section = report.split("## Served model (the bundled real-photo model)")[1].split("\n## ")[0]
    # concurrency, gateway, baseline, Triton direct, bound img/s, gateway/bound (+ verdict at the top level)
    assert re.search(r"^\| 1 \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|", section, re.M)
    assert re.search(
        r"^\| 4 \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ [✅❌] \| [0-9.]+ \| [0-9.]+ \|",
        section,
        re.M,
    )
    assert re.search(r"^\| 4 \| [0-9.]+ \| [0-9.]+ \([0-9]+ %\) \|", section, re.M)  # stage shares
    assert "py-spy" in section
    assert "served model: gateway / decode-only bound img/s, c=4 | ≥ 0.7 |" in report


# A machine's directories must not reach committed benchmark files.
MACHINE_PATH = re.compile(r"(?<![\w.>])(/work|/tmp|/root|/home|/var|/private)(/|\b)")


def _check_rerendered_and_portable(out: Path, charts: Path, work: Path, tmp_path: Path) -> None:
    results_file = out.parent / "results.json"  # written next to the report
    assert results_file.read_bytes() == (work / "results.json").read_bytes()
    original = out.read_bytes()
    # The report renders again from the results.json beside it, byte for byte, and twice the same.
    for _ in range(2):
        assert report_module.main([str(results_file), "--out", str(out), "--charts", str(charts)]) == 0
        assert out.read_bytes() == original
    for text in (
        original.decode(),
        results_file.read_text(),
        (charts / "served_gateway_profile.txt").read_text(),
    ):
        assert not MACHINE_PATH.search(text), MACHINE_PATH.search(text)
        assert str(tmp_path) not in text and str(Path.home()) + "/" not in text


def test_no_batching_config_is_derived_from_the_generated_one(tmp_path: Path) -> None:
    facts = ModelFacts(
        class_names=("cat", "dog"), image_size=64, mean=(0.5,) * 3, std=(0.2,) * 3, architecture="simple_cnn"
    )
    source = tmp_path / "cats_dogs"
    (source / "1").mkdir(parents=True)
    (source / "1" / "model.onnx").write_bytes(b"onnx")
    original = build_config(facts, ServingOptions())
    write_config(original, source / CONFIG_FILENAME)

    derived = read_config(
        derive_without_dynamic_batching(source, tmp_path / "cats_dogs_nobatch") / CONFIG_FILENAME
    )
    assert not derived.HasField("dynamic_batching") and original.HasField("dynamic_batching")
    assert derived.name == "cats_dogs_nobatch"
    derived.name, original.name = "x", "x"
    original.ClearField("dynamic_batching")
    assert derived == original  # nothing else changed
    assert (tmp_path / "cats_dogs_nobatch" / "1" / "model.onnx").read_bytes() == b"onnx"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--images", "/nonexistent/photos"], "photo folder not found"),
        (["--out", "/no/such/dir/B.md"], "report folder"),
        (["--served-checkpoint", "/no/such/model.pt"], "served checkpoint not found"),
    ],
)
def test_bad_paths_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], labelled_photos: Path
) -> None:
    base = ["--images", str(labelled_photos)]
    assert main([*base, *argv]) == 2
    assert message in capsys.readouterr().err


def test_fewer_than_three_runs_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--runs", "2"])
    assert exc.value.code == 2
    assert ">= 3" in capsys.readouterr().err
