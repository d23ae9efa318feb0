"""Shared fixtures for tests/training. Data fixtures first; other areas append theirs below."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from training.synthetic import generate_synthetic

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic set, ``cat/`` + ``dog/``, 40 images each, sides 48–128 px. Do not modify it."""
    return generate_synthetic(tmp_path_factory.mktemp("synthetic"), 40, seed=0, size_range=(48, 128))


PhotoFactory = Callable[..., bytes]


def make_photo(
    fmt: str = "JPEG", mode: str = "RGB", size: tuple[int, int] = (64, 48), seed: int = 0, **options: Any
) -> bytes:
    """Encoded bytes of a unique (by ``seed``) smooth random image in ``mode``, saved as ``fmt``."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    img = Image.fromarray(small, "RGB").resize(size, Image.Resampling.BILINEAR)
    if mode == "RGBA":
        img.putalpha(Image.new("L", size, int(rng.integers(100, 256))))
    elif mode == "P":
        img = img.quantize(colors=32)
    elif mode != "RGB":
        img = img.convert(mode)
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture
def photo() -> PhotoFactory:
    """``photo(fmt="JPEG", mode="RGB", size=(64, 48), seed=0, **save_options) -> bytes``."""
    return make_photo


def write_class_folders(
    root: Path, n_per_class: int, *, start: int = 0, size: tuple[int, int] = (48, 40)
) -> Path:
    """``root/cat`` + ``root/dog`` with ``n_per_class`` distinct small JPEGs each (seeds from ``start``)."""
    for offset, label in enumerate(("cat", "dog")):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(start, start + n_per_class):
            seed = 2 * i + offset
            (folder / f"{label}_{i:05d}.jpg").write_bytes(make_photo(size=size, seed=seed, quality=80))
    return root


@pytest.fixture
def class_folders() -> Callable[..., Path]:
    """``class_folders(root, n_per_class, start=0, size=(48, 40)) -> root`` with distinct JPEGs."""
    return write_class_folders


# --- training, evaluation and MLflow fixtures ------------------------------------------------

# Small enough to prepare in seconds, large enough that simple_cnn passes 90 % validation
# accuracy within configs/quick.yaml's budget (about 640 training images at 64 px).
PREPARED_PER_CLASS = 400
PREPARED_SIZE = 64


@dataclass(frozen=True)
class PreparedData:
    root: Path
    manifest: Path
    cache_dir: Path
    image_size: int


@pytest.fixture(scope="session")
def prepared_data(tmp_path_factory: pytest.TempPathFactory) -> PreparedData:
    """Synthetic photos run through the real CLI: ``training.data ingest`` then ``preprocess`` at 64 px."""
    from training import data

    root = tmp_path_factory.mktemp("prepared")
    manifest, cache_dir = root / "manifest.csv", root / "cache"
    common = ["--quiet"]
    rc = data.main(
        [*common, "ingest", "--source", "synthetic", "--synthetic-count", str(PREPARED_PER_CLASS),
         "--synthetic-dir", str(root / "raw"), "--manifest", str(manifest),
         "--rejects", str(root / "rejects.csv")]
    )  # fmt: skip
    assert rc == 0
    rc = data.main(
        [*common, "preprocess", "--manifest", str(manifest), "--cache-dir", str(cache_dir),
         "--image-size", str(PREPARED_SIZE)]
    )  # fmt: skip
    assert rc == 0
    return PreparedData(root, manifest, cache_dir, PREPARED_SIZE)


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private sqlite tracking store + artifact root for the whole session (env vars, undone after)."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    patch = pytest.MonkeyPatch()
    patch.setenv("MLFLOW_TRACKING_URI", uri)
    patch.setenv("MLFLOW_ARTIFACT_ROOT", (root / "artifacts").as_uri())
    yield uri
    patch.undo()


def _quick_config(prepared: PreparedData, output_dir: Path, **overrides: Any) -> Any:
    """configs/quick.yaml pointed at the prepared data, with test overrides."""
    from training.config import load_config

    sets = [
        f"manifest={prepared.manifest}",
        f"cache_dir={prepared.cache_dir}",
        f"image_size={prepared.image_size}",
        f"output_dir={output_dir}",
        *(f"{k}={v}" for k, v in overrides.items()),
    ]
    return load_config(PROJECT_ROOT / "configs" / "quick.yaml", sets)


@pytest.fixture(scope="session")
def quick_config() -> Callable[..., Any]:
    """``quick_config(prepared, output_dir, **overrides) -> TrainConfig`` from configs/quick.yaml."""
    return _quick_config


@pytest.fixture(scope="session")
def trained(prepared_data: PreparedData, mlflow_store: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One real training run (configs/quick.yaml, 15 epochs) registered in the session's MLflow store."""
    from training.train import train

    cfg = _quick_config(
        prepared_data, tmp_path_factory.mktemp("train-out"), epochs=15, early_stopping_patience=0
    )
    return train(cfg)
