"""Paths in committed benchmark files: relative to the project, or only a folder's own name outside it."""

from __future__ import annotations

from pathlib import Path

from benchmarks.portable import portable_command, portable_path
from benchmarks.report import render_served
from benchmarks.served import parse_stages, top_functions
from contract.paths import PROJECT_ROOT


def test_paths_inside_the_project_become_relative_and_outside_ones_keep_their_name(tmp_path: Path) -> None:
    assert portable_path(PROJECT_ROOT / "models" / "bundled" / "model.pt") == "models/bundled/model.pt"
    assert portable_path(PROJECT_ROOT) == "."
    assert portable_path(tmp_path / "photos") == "<outside>/photos"
    assert portable_path("build/perf/photos") == "build/perf/photos"  # relative: as given


def test_commands_lose_machine_directories_only(tmp_path: Path) -> None:
    argv = ["--quick", "--out", str(tmp_path / "B.md"), f"--work={tmp_path / 'w'}", "--runs", "3"]
    assert portable_command(argv) == "--quick --out '<outside>/B.md' '--work=<outside>/w' --runs 3"


def test_profile_top_functions_from_collapsed_stacks() -> None:
    folded = (
        "run (asyncio/runners.py:118);decode (gateway/decoding.py:90);load (/abs/PIL/ImageFile.py:300) 6\n"
        "run (asyncio/runners.py:118);infer (gateway/triton_backend.py:40) 3\n"
        "run (asyncio/runners.py:120) 1\n"
    )
    summary = top_functions(folded)
    assert summary["samples"] == 10
    assert summary["top"][0] == ["load (<outside>/ImageFile.py)", 60.0, 60.0]
    assert ["run (asyncio/runners.py)", 10.0, 100.0] in summary["top"]  # line numbers merged


def test_stage_histograms_are_read_from_the_metrics_text() -> None:
    text = (
        "# TYPE stage_duration_seconds histogram\n"
        'stage_duration_seconds_bucket{le="0.005",stage="decode"} 3.0\n'
        'stage_duration_seconds_count{stage="decode"} 4.0\n'
        'stage_duration_seconds_sum{stage="decode"} 0.02\n'
        'stage_duration_seconds_sum{stage="infer"} 0.5\n'
    )
    assert parse_stages(text) == {"decode_count": 4.0, "decode_sum": 0.02, "infer_sum": 0.5}


def test_a_run_without_the_served_model_says_so() -> None:
    lines = render_served({"served": None}, {}, lambda name: name)
    assert lines[0] == "## Served model (the bundled real-photo model)"
    assert "Not measured in this run (`--no-served`)." in lines
