"""`python -m training.data`: exit codes and messages for good and bad input."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from training.data import _build_parser, main
from training.manifest import MANIFEST_COLUMNS, load_manifest

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "training.data", "--quiet", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def test_synthetic_ingest_then_preprocess_end_to_end(tmp_path: Path) -> None:
    ingest = _run(["ingest", "--source", "synthetic", "--synthetic-count", "12"], tmp_path)
    assert ingest.returncode == 0, ingest.stderr
    assert "accepted 24 images, rejected 0" in ingest.stdout
    manifest = load_manifest(tmp_path / "data/manifest.csv")
    assert len(manifest) == 24 and tuple(manifest.columns) == MANIFEST_COLUMNS
    assert all(p.startswith("data/raw/synthetic/") for p in manifest["path"])  # relative: portable
    assert pd.read_csv(tmp_path / "data/rejects.csv").empty

    pre = _run(["preprocess", "--image-size", "32"], tmp_path)
    assert pre.returncode == 0, pre.stderr
    assert "24 written, 0 already cached" in pre.stdout
    assert len(list((tmp_path / "data/cache/32").glob("*.npy"))) == 24
    again = _run(["preprocess", "--image-size", "32"], tmp_path)
    assert "0 written, 24 already cached" in again.stdout


def test_missing_folder_exits_non_zero_with_a_message(tmp_path: Path) -> None:
    result = _run(["ingest", "--source", str(tmp_path / "nowhere")], tmp_path)
    assert result.returncode == 2
    assert "error: source folder not found" in result.stderr
    assert not (tmp_path / "data/manifest.csv").exists()


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({}, "source folder is empty"),
        ({"IMG_1.jpg": b"x", "misc/IMG_2.jpg": b"x"}, "cannot tell cats from dogs"),
        ({"cat/a.jpg": b"x"}, "no dog files"),
    ],
)
def test_bad_folders_exit_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], layout: dict[str, bytes], message: str
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name, data in layout.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    manifest = tmp_path / "manifest.csv"
    code = main(["--quiet", "ingest", "--source", str(source), "--manifest", str(manifest)])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not manifest.exists()


def test_only_corrupt_files_exit_non_zero_and_keep_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], photo: Callable[..., bytes]
) -> None:
    for label in ("cat", "dog"):
        (tmp_path / "src" / label).mkdir(parents=True)
        (tmp_path / "src" / label / "a.jpg").write_bytes(b"")
    (tmp_path / "src" / "cat" / "ok.jpg").write_bytes(photo())
    manifest, rejects = tmp_path / "manifest.csv", tmp_path / "rejects.csv"
    args = ["--quiet", "ingest", "--source", str(tmp_path / "src"), "--manifest", str(manifest)]
    code = main([*args, "--rejects", str(rejects)])
    assert code == 1
    assert "no usable dog images" in capsys.readouterr().err
    assert not manifest.exists()
    assert list(pd.read_csv(rejects)["reason"]) == ["empty", "empty"]


def test_corrupt_files_mid_dataset_do_not_stop_ingest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], class_folders: Callable[..., Path]
) -> None:
    root = class_folders(tmp_path / "src", 5)
    (root / "cat" / "cat_00002.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    manifest, rejects = tmp_path / "m.csv", tmp_path / "r.csv"
    code = main(
        ["--quiet", "ingest", "--source", str(root), "--manifest", str(manifest), "--rejects", str(rejects)]
    )
    assert code == 0
    assert len(load_manifest(manifest)) == 9
    assert pd.read_csv(rejects).to_dict("records") == [
        {
            "path": str((root / "cat" / "cat_00002.jpg").resolve()),
            "reason": "corrupt",
            "detail": "cannot read JPEG header",
        }
    ]
    out = capsys.readouterr().out
    assert "accepted 9 images, rejected 1" in out and "corrupt 1" in out


def test_quiet_is_accepted_before_and_after_the_command() -> None:
    parser = _build_parser()
    assert parser.parse_args(["--quiet", "preprocess"]).quiet is True
    assert parser.parse_args(["preprocess", "--quiet"]).quiet is True
    assert parser.parse_args(["preprocess"]).quiet is False


def test_preprocess_without_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--quiet", "preprocess", "--manifest", str(tmp_path / "none.csv")])
    assert code == 2
    assert "manifest not found" in capsys.readouterr().err


def test_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["ingest", "--min-size", "0"])
    assert exc.value.code == 2
    assert "must be ≥ 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_every_flag_has_help() -> None:
    parser = _build_parser()
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    parsers = [parser, *subparsers[0].choices.values()]
    assert {"download", "ingest", "preprocess"} <= set(subparsers[0].choices)
    for p in parsers:
        for action in p._actions:
            assert action.help, f"{p.prog}: {action.option_strings or action.dest} has no help"
