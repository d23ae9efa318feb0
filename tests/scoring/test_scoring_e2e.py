"""``python -m scoring`` end to end against a real Triton (session fixture in conftest.py)."""

from __future__ import annotations

import csv
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from imaging import load_for_model
from scoring.__main__ import main
from serving.processes import free_port
from serving.triton import TritonOptions
from tests.scoring.scoring_helpers import PROJECT_ROOT, write_photos
from tests.support.photos import photo
from tests.support.triton import IMAGE_SIZE


def _args(triton: TritonOptions, source: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--input", str(source), "--output", str(out), "--triton-url", triton.grpc_url,
        "--no-progress", "--workers", "1", *extra,
    ]  # fmt: skip


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _reference_probabilities(triton: TritonOptions, files: list[Path]) -> np.ndarray:
    """The served ONNX file run directly with ONNX Runtime on the same decode: what Triton must return."""
    session = ort.InferenceSession(str(triton.repository / "cats_dogs" / "1" / "model.onnx"))
    pixels = np.stack([load_for_model(p.read_bytes(), IMAGE_SIZE) for p in files])
    return np.asarray(session.run(None, {"image": pixels})[0])


def test_bad_files_go_to_the_errors_file_and_the_rest_is_scored(
    scoring_triton: TritonOptions, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = write_photos(tmp_path / "in", 20)
    bad = {
        "notes.txt": b"not a photo at all",
        "album0/truncated.jpg": photo(99)[:300],
        "album1/empty.jpg": b"",
    }
    for name, data in bad.items():
        (tmp_path / "in" / name).write_bytes(data)
    out = tmp_path / "scores.csv"

    assert main(_args(scoring_triton, tmp_path / "in", out, "--batch-size", "8")) == 1
    stderr = capsys.readouterr().err
    assert "20 scored, 0 already done, 3 failed of 23" in stderr
    assert "listed in the errors file" in stderr

    rows = _rows(out)
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in photos)
    by_path = {r["path"]: r for r in rows}
    expected = _reference_probabilities(scoring_triton, photos)
    for path, probs in zip(photos, expected, strict=True):
        row = by_path[str(path)]
        assert row["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        got = np.array([float(row["prob_cat"]), float(row["prob_dog"])])
        np.testing.assert_allclose(got, probs, atol=2e-6)
        assert row["predicted_class"] == ("cat", "dog")[int(np.argmax(probs))]
        assert float(row["confidence"]) == pytest.approx(probs.max(), abs=2e-6)
        assert row["model_version"] == "1"
    assert {r["predicted_class"] for r in rows} == {"cat", "dog"}  # the fixture model splits them

    errors = _rows(out.with_name("scores.csv.errors.csv"))
    assert sorted(e["path"] for e in errors) == sorted(str(tmp_path / "in" / n) for n in bad)
    assert all(e["error"] and e["detail"] for e in errors)

    # A rerun skips what is done, retries the failures (still failing) and writes nothing twice.
    assert main(_args(scoring_triton, tmp_path / "in", out)) == 1
    assert "0 scored, 20 already done, 3 failed of 23" in capsys.readouterr().err
    assert len(_rows(out)) == 20


def test_parquet_output_reads_back_and_resumes(
    scoring_triton: TritonOptions, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow.parquet as pq

    photos = write_photos(tmp_path / "in", 12)
    out = tmp_path / "scores.parquet"
    assert main(_args(scoring_triton, tmp_path / "in", out, "--batch-size", "4")) == 0
    table = pq.read_table(out)
    assert sorted(table["path"].to_pylist()) == sorted(str(p) for p in photos)
    assert table.column_names[:4] == ["path", "sha256", "predicted_class", "confidence"]
    assert main(_args(scoring_triton, tmp_path / "in", out)) == 0
    assert "0 scored, 12 already done" in capsys.readouterr().err
    assert pq.read_table(out).num_rows == 12


def _complete_rows(path: Path) -> int:
    if not path.exists():
        return 0
    data = path.read_bytes()
    return max(0, data.count(b"\n") - 1)  # minus the header; a torn last line has no newline


def test_killed_run_resumes_without_duplicates_or_gaps(
    scoring_triton: TritonOptions, photos_300: tuple[Path, list[Path]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    folder, photos = photos_300
    out = tmp_path / "scores.csv"
    # Small batches and one request in flight: the run takes long enough to be killed mid-way.
    argv = _args(scoring_triton, folder, out, "--batch-size", "2", "--in-flight", "1")
    process = subprocess.Popen(
        [sys.executable, "-m", "scoring", *argv],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its decode workers are in the same group and die with it
    )
    deadline = time.monotonic() + 60
    try:
        while _complete_rows(out) < 10 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, f"the scorer ended before it was killed: {stderr!r}"
    written = _complete_rows(out)
    assert 0 < written < len(photos), "kill -9 should land mid-run"

    assert main(_args(scoring_triton, folder, out, "--batch-size", "16")) == 0
    assert f"{len(photos) - written} scored, {written} already done, 0 failed" in capsys.readouterr().err
    keys = Counter((r["path"], r["sha256"]) for r in _rows(out))
    assert [k for k, n in keys.items() if n > 1] == []
    assert {path for path, _ in keys} == {str(p) for p in photos}


def test_shards_cover_every_input_exactly_once(
    scoring_triton: TritonOptions, photos_300: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    folder, photos = photos_300
    seen: list[str] = []
    for index in range(3):
        out = tmp_path / f"shard{index}.csv"
        argv = _args(scoring_triton, folder, out, "--shard", f"{index}/3", "--batch-size", "16")
        assert main(argv) == 0
        shard_paths = [r["path"] for r in _rows(out)]
        assert shard_paths, f"shard {index}/3 got nothing"
        seen += shard_paths
    assert len(seen) == len(set(seen)) == len(photos)
    assert set(seen) == {str(p) for p in photos}


def test_unreachable_triton_is_a_clear_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_photos(tmp_path / "in", 2)
    argv = ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "s.csv"), "--no-progress"]
    assert main([*argv, "--triton-url", f"127.0.0.1:{free_port()}"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach Triton at 127.0.0.1:" in err and "Traceback" not in err
    assert not (tmp_path / "s.csv").exists()


def test_output_in_a_missing_folder_is_a_clear_exit_2(
    scoring_triton: TritonOptions, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_photos(tmp_path / "in", 2)
    out = tmp_path / "no" / "such" / "scores.csv"
    assert main(_args(scoring_triton, tmp_path / "in", out)) == 2
    assert f"output folder does not exist: {out.parent}" in capsys.readouterr().err
    assert not out.parent.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--batch-size", "0"], "must be >= 1"),
        (["--output", "scores.json"], "must end in .csv or .parquet"),
        (["--input", "/nonexistent/photos"], "input not found"),
    ],
)
def test_bad_arguments_exit_2_before_contacting_triton(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    write_photos(tmp_path / "in", 1)
    base = ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "s.csv"), "--no-progress"]
    # An unreachable Triton: these must be refused on their own, without waiting for a connection.
    assert main([*base, *extra, "--triton-url", f"127.0.0.1:{free_port()}"]) == 2
    assert message in capsys.readouterr().err


def test_several_triton_endpoints_one_of_them_down(
    scoring_triton: TritonOptions, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A list of endpoints: batches go to the servers that answer; a dead one is skipped, not fatal."""
    photos = write_photos(tmp_path / "in", 12)
    out = tmp_path / "scores.csv"
    argv = _args(scoring_triton, tmp_path / "in", out, "--batch-size", "4")
    argv[argv.index("--triton-url") + 1] = f"127.0.0.1:{free_port()},{scoring_triton.grpc_url}"
    assert main(argv) == 0, capsys.readouterr().err
    assert len(_rows(out)) == len(photos)


def test_a_malformed_triton_url_is_a_clear_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_photos(tmp_path / "in", 1)
    argv = ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "s.csv"), "--no-progress"]
    assert main([*argv, "--triton-url", "triton-a,triton-b"]) == 2
    err = capsys.readouterr().err
    assert "a Triton address must be host:port" in err and "Traceback" not in err
