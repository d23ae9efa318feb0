"""``python -m benchmarks.gpu_ort run``: parity and throughput per provider, and an honest report
for a provider that cannot start (never a CPU number filed under a GPU provider's name)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from benchmarks.gpu_ort import BATCH_SIZES, FP16_FILE, FP32_FILE, IMAGES_FILE, main
from export.onnx_export import export_onnx
from export.quantize import convert_fp16
from training.models import PetClassifier, get_model

IMAGE_SIZE = 32
GPU_PROVIDERS = {"CUDAExecutionProvider", "TensorrtExecutionProvider"}


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `pack` writes: an export's two models and labelled uint8 images."""
    folder = tmp_path_factory.mktemp("gpu_ort")
    torch.manual_seed(0)
    model = PetClassifier(get_model("simple_cnn", width=8)).eval()
    convert_fp16(export_onnx(model, IMAGE_SIZE, folder / FP32_FILE), folder / FP16_FILE)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    np.savez_compressed(folder / IMAGES_FILE, images=images, labels=rng.integers(0, 2, 20), source="random")
    return folder


def test_run_measures_the_cpu_reference_and_reports_each_gpu_provider(
    packed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gpu_ort.json"
    main(["run", "--data", str(packed), "--seconds", "0.02", "--out", str(out)])
    report = json.loads(out.read_text())
    rows = {(r["provider"], r["precision"]): r for r in report["results"]}
    assert set(rows) == {("CPUExecutionProvider", "fp32")} | {
        (p, precision) for p in GPU_PROVIDERS for precision in ("fp32", "fp16")
    }
    cpu = rows["CPUExecutionProvider", "fp32"]
    assert cpu["max_abs_diff"] == 0.0 and cpu["argmax_agreement"] == 1.0
    assert sorted(int(b) for b in cpu["host"]) == list(BATCH_SIZES)
    assert all(m["img_s"] > 0 and m["ms_p90"] >= m["ms_median"] for m in cpu["host"].values())
    available = set(ort.get_available_providers())
    for (provider, _), row in rows.items():
        if provider == "CPUExecutionProvider":
            continue
        if provider not in available:
            # Started anyway, ORT would have run it on the CPU: that must be a "not run", not a number.
            assert "error" in row and "host" not in row, row
        elif "error" not in row:
            assert row["argmax_agreement"] >= 0.99 and len(row["device"]) == len(BATCH_SIZES)
    table = capsys.readouterr().out
    assert "| CPU | fp32 | 0.00e+00 | 100.00% |" in table
    if "CUDAExecutionProvider" not in available:
        assert "| CUDA | fp16 | not run: " in table


def test_pack_refuses_an_export_without_the_fp16_variant(tmp_path: Path) -> None:
    (tmp_path / FP32_FILE).write_bytes(b"")
    with pytest.raises(SystemExit, match="export with --fp16"):
        main(
            ["pack", "--model-dir", str(tmp_path), "--manifest", str(tmp_path / "m.csv"),
             "--cache-dir", str(tmp_path), "--image-size", "32", "--out", str(tmp_path / "out")]
        )  # fmt: skip
