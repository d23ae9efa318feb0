"""Helpers shared by the export tests: tiny real models, a labelled data set in the manifest/cache
contract, and MLflow registration as training does it. Models are simple_cnn width 8 at 32 px, so an
export takes a few seconds."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from export.check_images import DataLocation
from export.source import ModelSource
from training.checkpoint import CheckpointMeta
from training.models import PetClassifier, get_model
from training.transforms import CLASS_NAMES, MEAN, STD

IMAGE_SIZE = 32


def stripes(n: int, size: int = IMAGE_SIZE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A labelled set a tiny CNN learns in a second: 'cat' = horizontal stripes, 'dog' = vertical,
    random period, phase, colours and noise (so no pixel or colour mean gives the class away)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    images = np.empty((n, size, size, 3), np.uint8)
    labels = np.arange(n) % 2
    for i in range(n):
        period, phase = rng.uniform(4, 10), rng.uniform(0, 2 * np.pi)
        coord = yy if labels[i] == 0 else xx
        wave = (np.sin(2 * np.pi * coord / period + phase) > 0).astype(np.float32)[..., None]
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        image = wave * a + (1 - wave) * b + rng.normal(0, 10, (size, size, 3))
        images[i] = np.clip(image, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


def meta(**overrides: object) -> CheckpointMeta:
    values: dict[str, object] = {
        "model_name": "simple_cnn",
        "model_kwargs": {"width": 8, "dropout_rate": 0.0},
        "class_names": list(CLASS_NAMES),
        "image_size": IMAGE_SIZE,
        "mean": list(MEAN),
        "std": list(STD),
        "git_sha": "0123abcd",
        "manifest_sha256": "feedbeef",
    }
    values.update(overrides)
    return CheckpointMeta(**values)  # type: ignore[arg-type]


def untrained_model(seed: int = 0) -> PetClassifier:
    torch.manual_seed(seed)
    return PetClassifier(get_model("simple_cnn", width=8, dropout_rate=0.0)).eval()


def trained_model(epochs: int = 8) -> PetClassifier:
    images, labels = stripes(256, seed=0)
    return fit(untrained_model(0), images, labels, epochs)


def fit(model: PetClassifier, images: np.ndarray, labels: np.ndarray, epochs: int = 8) -> PetClassifier:
    """A few epochs of Adam on uint8 NHWC images (any size: the network pools globally)."""
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), 32):
            idx = order[i : i + 32]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()


@dataclass(frozen=True)
class Models:
    trained: PetClassifier
    untrained: PetClassifier
    trained_ckpt: Path
    untrained_ckpt: Path


def source(model: PetClassifier, description: str = "checkpoint:test", **overrides: object) -> ModelSource:
    return ModelSource(model, meta(**overrides), description)


def write_dataset(root: Path, per_split: dict[str, int], seed: int = 100) -> DataLocation:
    """data/manifest.csv + data/cache/<S>/<sha256>.npy as training.data writes them (ARCHITECTURE.md)."""
    cache = root / "cache"
    (cache / str(IMAGE_SIZE)).mkdir(parents=True)
    rows = []
    for offset, (split, n) in enumerate(per_split.items()):
        images, labels = stripes(n, seed=seed + offset)
        for image, label in zip(images, labels, strict=True):
            sha = hashlib.sha256(image.tobytes()).hexdigest()
            np.save(cache / str(IMAGE_SIZE) / f"{sha}.npy", image)
            rows.append(
                {
                    "sha256": sha,
                    "label": CLASS_NAMES[int(label)],
                    "split": split,
                    "path": f"raw/{sha}.png",
                    "format": "PNG",
                    "width": 40 + int(label) * 8,
                    "height": 36,
                    "bytes": image.nbytes,
                }
            )
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return DataLocation(manifest=manifest, cache_dir=cache)


def register(
    checkpoint: Path, *, aliases: tuple[str, ...] = (), metrics: dict[str, float] | None = None
) -> str:
    """Log ``checkpoint`` as a run's checkpoint artifact and register it, as training.train does.

    Returns the new model version number. Needs the ``mlflow_store`` fixture.
    """
    import shutil
    import tempfile

    import mlflow

    from training.registry import CHECKPOINT_ARTIFACT, REGISTERED_MODEL_NAME, configure_mlflow

    configure_mlflow()
    client = mlflow.MlflowClient()
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run() as run:
        artifact_dir, artifact_name = CHECKPOINT_ARTIFACT.rsplit("/", 1)
        local = Path(tmp) / artifact_name
        shutil.copy2(checkpoint, local)
        mlflow.log_artifact(str(local), artifact_path=artifact_dir)
        if metrics:
            mlflow.log_metrics(metrics)
    if not client.search_registered_models(f"name='{REGISTERED_MODEL_NAME}'"):
        client.create_registered_model(REGISTERED_MODEL_NAME)
    version = client.create_model_version(
        REGISTERED_MODEL_NAME, source=f"runs:/{run.info.run_id}/{artifact_dir}", run_id=run.info.run_id
    )
    for alias in aliases:
        client.set_registered_model_alias(REGISTERED_MODEL_NAME, alias, version.version)
    return str(version.version)


def write_new_photos(root: Path, n: int, *, size: int = 64, seed: int = 500, mislabel_every: int = 7) -> Path:
    """``root/cat`` + ``root/dog`` PNG photos the served stripes model gets wrong: a new data set.

    The classes are the stripes swapped ('cat' = vertical), and every ``mislabel_every``-th photo sits
    in the wrong folder, as in real shelter data: a model trained on it scores well below 1.0, the
    stripes model trained on the other set scores near 0 on it.
    """
    from PIL import Image

    images, labels = stripes(n, size=size, seed=seed)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        is_cat = bool(label == 1) != (i % mislabel_every == 0)  # swapped, and some mislabelled
        folder = root / ("cat" if is_cat else "dog")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"photo_{i:04d}.png")
    return root


def ingest_and_preprocess(photos: Path, root: Path, image_size: int) -> DataLocation:
    """The real data CLI, as ``make up DATA_DIR=…`` runs it: ingest the folder, cache it at ``image_size``."""
    from training import data

    manifest, cache = root / "manifest.csv", root / "cache"
    args = ["--quiet", "ingest", "--source", str(photos), "--manifest", str(manifest)]
    assert data.main([*args, "--rejects", str(root / "rejects.csv"), "--workers", "1"]) == 0
    args = ["--quiet", "preprocess", "--manifest", str(manifest), "--cache-dir", str(cache)]
    assert data.main([*args, "--image-size", str(image_size), "--workers", "1"]) == 0
    return DataLocation(manifest=manifest, cache_dir=cache)


def train_on(location: DataLocation, image_size: int, epochs: int = 10) -> PetClassifier:
    """A tiny model trained on the cached train split of ``location`` at ``image_size``."""
    from export.check_images import load_split

    train = load_split("train", image_size, location=location)
    assert train is not None
    return fit(untrained_model(3), train.images, train.labels, epochs)
