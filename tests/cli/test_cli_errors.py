"""What a user sees when a command goes wrong: one line on stderr, never a traceback, the right exit code.

The real-world cases run the entry points as users do (``python -m …`` in a subprocess); the
usage-error and ``--help`` sweeps over every entry point run them in-process (runpy), which is the
same code without paying an interpreter start for each.
"""

from __future__ import annotations

import os
import runpy
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from serving.processes import free_port
from tests.support.photos import photo

PROJECT_ROOT = Path(__file__).resolve().parents[2]

ENTRY_POINTS = [
    "scoring",
    "export",
    "export.rollback",
    "benchmarks.int8_bench",
    "training.train",
    "training.data",
    "training.evaluate",
    "training.synthetic",
    "serving.up",
    "serving.triton",
    "serving.stop",
    "serving.gateway_process",
    "gateway",
    "benchmarks.perf",
    "benchmarks.suite",
    "benchmarks.report",
    "benchmarks.gpu_ort",
    "benchmarks.decode_bench",
    "benchmarks.baseline_server",
]


def run_cli(
    *argv: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def one_line_error(stderr: str) -> str:
    """The whole of stderr is one line (no traceback, no usage block); returns it."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    return lines[0]


def run_in_process(module: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    saved = sys.argv
    sys.argv = [module, *argv]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=False)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (1 if exc.code else 0)
    finally:
        sys.argv = saved
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_an_unknown_flag_is_one_line_and_exit_2(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_in_process(module, ["--no-such-flag"], capsys)
    assert code == 2
    line = one_line_error(err)
    # argparse names the unknown flag, or first the required arguments that are missing.
    assert ("--no-such-flag" in line or "required" in line) and f"python -m {module} --help" in line


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_help_shows_defaults_and_examples(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_in_process(module, ["--help"], capsys)
    assert code == 0
    assert "example" in out.lower(), f"{module} --help has no example"
    assert f"python -m {module}" in out


def test_training_help_says_what_runs_without_a_config(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_in_process("training.train", ["--help"], capsys)
    assert "without --config" in out and "simple_cnn" in out


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        (folder / f"p{i}.jpg").write_bytes(photo(i, size=(64, 48)))
    return folder


def _unreachable_triton() -> list[str]:
    return ["--triton-url", f"127.0.0.1:{free_port()}", "--no-progress"]


def in_process(
    main: Callable[[list[str]], int], argv: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """``main(argv)``'s exit code (argparse's SystemExit included) and its one line of stderr."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, one_line_error(capsys.readouterr().err)


def scoring_main(argv: list[str]) -> int:
    from scoring.__main__ import main

    return main(argv)


def test_scoring_into_an_unwritable_folder(photos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--input", str(photos), "--output", "/sys/scores.csv", *_unreachable_triton()]
    code, line = in_process(scoring_main, argv, capsys)
    assert code == 2
    assert "cannot write to /sys" in line


def test_scoring_shard_out_of_range_says_why(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--input", str(photos), "--output", str(tmp_path / "s.csv"), "--shard", "3/2"]
    code, line = in_process(scoring_main, argv, capsys)
    assert code == 2
    assert "need 0 <= i < N" in line


def test_scoring_a_single_photo_as_input(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--input", str(photos / "p0.jpg"), "--output", str(tmp_path / "s.csv"), *_unreachable_triton()]
    code, line = in_process(scoring_main, argv, capsys)
    assert code == 2
    assert "not a text CSV manifest" in line and "folder" in line


def test_scoring_reads_a_parquet_manifest(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "manifest.parquet"
    pq.write_table(pa.table({"path": [str(p) for p in sorted(photos.iterdir())]}), manifest)
    argv = ["--input", str(manifest), "--output", str(tmp_path / "s.csv"), *_unreachable_triton()]
    code, line = in_process(scoring_main, argv, capsys)
    # The manifest was read; it is Triton that is missing.
    assert code == 2
    assert "cannot reach Triton" in line
    pq.write_table(pa.table({"photo": ["a.jpg"]}), manifest)
    code, line = in_process(scoring_main, argv, capsys)
    assert code == 2
    assert "needs a 'path' column" in line


def test_export_check_of_a_file_that_is_not_onnx(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from export.cli import main

    path = tmp_path / "not-an-onnx-file"
    path.write_bytes(b"\x08\xff\xff\xff plainly not a protobuf")
    code, line = in_process(main, ["--check", str(path)], capsys)
    assert code == 2
    assert "is not an ONNX model" in line
    code, line = in_process(main, ["--check", str(tmp_path / "missing.onnx")], capsys)
    assert code == 2
    assert "no such file" in line


def test_training_data_with_a_missing_source_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.data import main

    argv = ["--quiet", "ingest", "--source", str(tmp_path / "nowhere"), "--manifest", str(tmp_path / "m.csv")]
    code, line = in_process(main, argv, capsys)
    assert code == 2
    assert "source folder not found" in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--config", "params.yaml"], "add --section train"),
        (["--config", "configs/train.yaml", "--set", "lr=abc"], "--set lr=abc: lr must be float"),
        (["--set", "learning_rate=0.1"], "did you mean 'lr'?"),
        (["--config", "configs/nope.yaml"], "config file not found"),
    ],
)
def test_training_config_mistakes_point_at_the_right_thing(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.train import main

    assert main(argv) == 2
    line = one_line_error(capsys.readouterr().err)
    assert expected in line


def test_a_second_gateway_on_a_busy_port_fails_before_touching_shared_files(tmp_path: Path) -> None:
    """One clear line, non-zero, and the shared prediction log and stats snapshot left alone."""
    stats, db = tmp_path / "stats.json", tmp_path / "predictions.db"
    stats.write_text('{"sentinel": true}')
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(
            "-m",
            "gateway",
            "--port",
            str(port),
            env={
                "STATS_SNAPSHOT_PATH": str(stats),
                "TRACKING_DB": str(db),
                "TRITON_URL": f"127.0.0.1:{free_port()}",
            },
        )
    assert result.returncode != 0
    line = one_line_error(result.stderr)
    assert f"cannot listen on 127.0.0.1:{port}" in line
    assert "gateway_started" not in result.stdout + result.stderr
    assert stats.read_text() == '{"sentinel": true}'
    assert not db.exists()


@pytest.mark.triton
@pytest.mark.slow
def test_ctrl_c_during_scoring_says_what_is_saved_and_a_rerun_resumes(triton: object, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    for i in range(200):
        path = folder / f"a{i % 4}" / f"p{i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(photo(i, size=(96, 72)))
    out = tmp_path / "scores.csv"
    argv = ["-m", "scoring", "--input", str(folder), "--output", str(out), "--no-progress", "--workers", "1"]
    argv += ["--triton-url", triton.launcher.options.grpc_url]  # type: ignore[attr-defined]
    # Small batches, one in flight: slow enough to interrupt mid-way.
    process = subprocess.Popen(
        [sys.executable, *argv, "--batch-size", "2", "--in-flight", "1"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if out.exists() and out.read_bytes().count(b"\n") > 10:
            break
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "fork()" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted:") and "rerun the same command to resume" in last
    done = out.read_bytes().count(b"\n") - 1
    assert 0 < done < 200

    rerun = run_cli(*argv, "--batch-size", "32")
    assert rerun.returncode == 0, rerun.stderr
    assert f"{200 - done} scored, {done} already done, 0 failed" in rerun.stderr
    assert "fork()" not in rerun.stderr, rerun.stderr
    assert not out.with_name("scores.csv.errors.csv").exists(), "no failures: no errors file"


def test_make_help_lists_every_target_and_the_variables() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    phony = " ".join(
        line.split(":", 1)[1]
        for line in makefile.replace("\\\n", " ").splitlines()
        if line.startswith(".PHONY:")
    ).split()
    result = subprocess.run(
        ["make", "-s", "--no-print-directory", "help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")}
    assert set(phony) - listed == set(), f"make help leaves out {sorted(set(phony) - listed)}"
    for variable in ("SCORE_ARGS", "PERF_IMAGES", "DATA_DIR", "TRAIN_CONFIG"):
        assert variable in listed, f"make help does not document {variable}"
