"""``make perf``'s Triton sweep: NVIDIA's real perf_analyzer from the cached Debian trixie root
filesystem, briefly against the test Triton, beside the project's generator; plus the pieces around it.

Building the root filesystem needs root and Debian's mmdebstrap (and ~2 minutes once; it is cached
under build/perf-analyzer). Where they are missing the real-tool tests skip, except when
``PERF_ANALYZER_REQUIRED=1`` (set by .ci/run): CI must run them, never skip them.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from benchmarks import perf_root
from benchmarks.loadgen import parse_triton_metrics
from benchmarks.perf import main, perf_analyzer_input, read_perf_analyzer_csv
from benchmarks.perf_root import (
    CA_INSIDE,
    PerfRootError,
    RootSpec,
    ensure_root,
    pip_environment,
    run_perf_analyzer,
)
from contract.model_info import ModelInfo

REQUIRED = os.environ.get("PERF_ANALYZER_REQUIRED") == "1"


@pytest.fixture(scope="module")
def root() -> Path:
    spec = RootSpec.default()
    if not perf_root.is_ready(perf_root.root_path(spec)) and not REQUIRED:
        if os.geteuid() != 0:
            pytest.skip("perf_analyzer's root filesystem needs root to build and run")
        if shutil.which("mmdebstrap") is None:
            pytest.skip("Debian mmdebstrap is not installed (apt-get install -y mmdebstrap)")
    return ensure_root(spec, quiet=True)


def served_requests(metrics_url: str) -> float:
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    return parse_triton_metrics(text, "cats_dogs")["nv_inference_request_success"]


def mounted(path: Path) -> bool:
    return os.path.ismount(path)


@pytest.mark.slow
@pytest.mark.triton
def test_triton_sweep_runs_real_perf_analyzer_beside_the_generator(
    root: Path, triton, labelled_photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics_url = triton.launcher.options.metrics_url
    before = served_requests(metrics_url)
    requests, warmup, levels = 40, 2, (1, 2)
    out = tmp_path / "triton.csv"
    code = main(
        ["triton", "--images", str(labelled_photos), "--grpc-url", triton.grpc_url,
         "--metrics-url", metrics_url, "--concurrency", ",".join(map(str, levels)),
         "--max-requests", str(requests), "--window-ms", "1000", "--warmup", str(warmup), "--runs", "1",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err

    # perf_analyzer's own -f CSV, one per level, as the tool wrote it.
    for level in levels:
        (row,) = read_perf_analyzer_csv(tmp_path / "triton-perf_analyzer" / f"c{level}-run1.csv")
        assert int(row["Concurrency"]) == level
        assert float(row["Inferences/Second"]) > 0
        assert 0 < int(row["p50 latency"]) <= int(row["p99 latency"])
        assert int(row["Server Compute Infer"]) > 0  # read from Triton's statistics by perf_analyzer itself
    with out.open(newline="") as fh:
        assert [int(r["Concurrency"]) for r in csv.DictReader(fh)] == list(levels)

    # Both tools really loaded this Triton: the generator its warm-up + bound at every level, and
    # perf_analyzer its warm-up + at least what its CSV says it did over 3 one-second windows.
    pa_sent = sum(
        float(
            read_perf_analyzer_csv(tmp_path / "triton-perf_analyzer" / f"c{c}-run1.csv")[0][
                "Inferences/Second"
            ]
        )
        * 3
        for c in levels
    )
    assert served_requests(metrics_url) - before >= len(levels) * (requests + 2 * warmup) + 0.9 * pa_sent

    pairs = json.loads((tmp_path / "triton-compare.json").read_text())
    assert [p["concurrency"] for p in pairs] == list(levels)
    assert all(p["perf_analyzer_img_s"][0] > 0 and p["loadgen_img_s"][0] > 0 for p in pairs)
    assert "| 1 |" in (tmp_path / "triton-compare.md").read_text()
    assert (tmp_path / "triton.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not mounted(root / "proc") and not mounted(root / "mnt")


@pytest.mark.slow
@pytest.mark.triton
def test_a_failing_run_is_one_line_and_leaves_nothing_mounted(root: Path, triton, tmp_path: Path) -> None:
    with pytest.raises(PerfRootError) as exc:
        run_perf_analyzer(
            root,
            tmp_path,
            ["-m", "no_such_model", "-u", triton.grpc_url, "-i", "grpc"],
            timeout_s=60,
            quiet=True,
        )
    assert "\n" not in str(exc.value) and "perf_analyzer failed" in str(exc.value)
    assert not mounted(root / "proc") and not mounted(root / "mnt")
    assert Path("/proc/mounts").read_text().count(str(root)) == 0


def test_input_data_is_the_photos_bytes_at_the_served_shape() -> None:
    pixels = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)

    def info(batching: bool) -> ModelInfo:
        return ModelInfo(
            name="m",
            version="1",
            versions=("1",),
            input_name="image",
            image_size=4,
            output_name="probabilities",
            max_batch_size=8 if batching else 1,
            batching=batching,
            class_names=("cat", "dog"),
        )

    data = perf_analyzer_input(info(batching=True), pixels)["data"]
    assert [step["image"]["shape"] for step in data] == [[4, 4, 3]] * 2
    assert base64.b64decode(data[1]["image"]["b64"]) == pixels[1].tobytes()
    unbatched = perf_analyzer_input(info(batching=False), pixels)["data"]
    assert unbatched[0]["image"]["shape"] == [1, 4, 4, 3]


def test_fingerprint_changes_with_every_input() -> None:
    base = RootSpec(requirements="perf-analyzer==2.60.0\n")
    changed = [
        RootSpec(requirements="perf-analyzer==2.59.0\n"),
        RootSpec(suite="forky", requirements=base.requirements),
        RootSpec(packages=(*base.packages, "curl"), requirements=base.requirements),
    ]
    assert len({base.fingerprint(), *(c.fingerprint() for c in changed)}) == 4
    assert RootSpec.default().requirements.strip().startswith("perf-analyzer==")  # pinned, not floating


def test_pip_inside_gets_the_hosts_remote_settings_but_no_host_paths() -> None:
    env = pip_environment(
        {
            "PIP_INDEX_URL": "https://mirror.example/simple",
            "PIP_EXTRA_INDEX_URL": "file:///opt/pypi/simple https://extra.example/simple",
            "PIP_FIND_LINKS": "/opt/wheels",
            "PIP_CERT": "/etc/ssl/certs/host.crt",
            "HTTPS_PROXY": "http://proxy.example:3128",
        }
    )
    assert env["PIP_INDEX_URL"] == "https://mirror.example/simple"
    assert env["PIP_EXTRA_INDEX_URL"] == "https://extra.example/simple"
    assert env["HTTPS_PROXY"] == "http://proxy.example:3128"
    assert env["PIP_CERT"] == CA_INSIDE
    assert "PIP_FIND_LINKS" not in env
    assert not [k for k, v in env.items() if k.startswith("PIP_") and k != "PIP_CERT" and "/opt/" in v]


def test_missing_mmdebstrap_or_root_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(perf_root.os, "geteuid", lambda: 0)
    monkeypatch.setattr(perf_root.shutil, "which", lambda name: None)
    with pytest.raises(PerfRootError, match=r"mmdebstrap is not installed .*apt-get install -y mmdebstrap"):
        ensure_root(RootSpec(requirements="x"), tmp_path)
    monkeypatch.setattr(perf_root.os, "geteuid", lambda: 1000)
    with pytest.raises(PerfRootError, match="needs root"):
        ensure_root(RootSpec(requirements="x"), tmp_path)


def test_a_missing_photo_folder_names_perf_images(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["triton", "--images", "/nonexistent/photos", "--out", "/tmp/unused.csv"]) == 2
    err = capsys.readouterr().err
    assert "PERF_IMAGES" in err and err.count("\n") == 1


def test_without_a_folder_the_repository_makes_its_own_photos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks import photos

    monkeypatch.setattr(photos, "SYNTHETIC_DIR", tmp_path / "photos")
    monkeypatch.setattr(photos, "SYNTHETIC_PER_CLASS", 3)
    folder = photos.resolve_photos(None, say=lambda text: None)
    assert (
        sorted(p.parent.name for p in folder.rglob("*.*") if not p.name.startswith("."))
        == ["cat"] * 3 + ["dog"] * 3
    )
