"""The shipped model: a float16 copy of a checkpoint with its card, registered like any trained model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from training import registry
from training.bundled import BundleError, make_bundle, read_card, register
from training.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from training.models import PetClassifier, get_model
from training.transforms import CLASS_NAMES, MEAN, STD

CARD = {
    "data": "test photos",
    "metrics": {"test": {"accuracy": 0.91, "f1_macro": 0.9, "n": 10}, "val": {"accuracy": 0.9}},
    "calibration": {"threshold": 0.62},
}


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = PetClassifier(get_model("simple_cnn", width=8, dropout_rate=0.0)).eval()
    meta = CheckpointMeta(
        model_name="simple_cnn",
        model_kwargs={"num_classes": 2, "dropout_rate": 0.0, "width": 8},
        class_names=list(CLASS_NAMES),
        image_size=32,
        mean=list(MEAN),
        std=list(STD),
        config={"run_name": "tiny", "model": "simple_cnn", "epochs": 1, "tags": {"x": "y"}},
        manifest_sha256="abc",
    )
    return save_checkpoint(tmp_path / "last.pt", model, meta)


def test_bundle_stores_float16_weights_that_load_as_an_ordinary_checkpoint(
    checkpoint: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    path = make_bundle(checkpoint, CARD, bundle)
    payload = torch.load(path, weights_only=True)
    floats = [v for v in payload["model_state"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert path.stat().st_size < checkpoint.stat().st_size * 0.7

    original, _ = load_checkpoint(checkpoint)
    shipped, meta = load_checkpoint(path)
    assert meta.manifest_sha256 == "abc" and meta.image_size == 32
    assert next(shipped.parameters()).dtype == torch.float32  # cast back on load
    images = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.allclose(original(images), shipped(images), atol=2e-2)

    card = read_card(bundle)
    assert card["name"] == "tiny" and card["weights_dtype"] == "float16"
    assert card["metrics"]["test"]["accuracy"] == 0.91


def test_a_checkpoint_that_does_not_match_its_card_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    make_bundle(checkpoint, CARD, bundle)
    (bundle / "model.pt").write_bytes((bundle / "model.pt").read_bytes() + b"\0")
    with pytest.raises(BundleError, match="does not match its card"):
        read_card(bundle)
    with pytest.raises(BundleError, match="no bundled model"):
        read_card(tmp_path / "nowhere")


def test_register_once_tags_it_bundled_and_makes_it_champion_only_when_none_exists(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_ARTIFACT_ROOT", (tmp_path / "artifacts").as_uri())
    bundle = tmp_path / "bundle"
    make_bundle(checkpoint, CARD, bundle)
    said: list[str] = []

    version = register(bundle, say=said.append)
    client = registry.get_client()
    champion = registry.version_by_alias(client, registry.CHAMPION)
    assert champion is not None and str(champion.version) == version
    assert champion.tags["bundled"] == "true"
    run = client.get_run(champion.run_id)
    assert run.data.tags["bundled"] == "true" and run.data.tags["manifest_sha256"] == "abc"
    assert run.data.metrics["test_accuracy"] == pytest.approx(0.91)  # what export's gate falls back to
    # The registered run carries the checkpoint the export path downloads.
    local = registry.download_checkpoint(champion.run_id, tmp_path / "dl")
    assert json.loads(json.dumps(load_checkpoint(local)[1].config))["run_name"] == "tiny"

    assert register(bundle, say=said.append) == version  # idempotent: matched by sha256
    assert any("already registered" in line for line in said)

    # A champion that exists (e.g. a user's own model) is never displaced by a bundled one.
    payload = torch.load(checkpoint, weights_only=True)
    payload["model_state"] = {
        k: v + 1 if v.is_floating_point() else v for k, v in payload["model_state"].items()
    }
    changed = tmp_path / "changed.pt"
    torch.save(payload, changed)
    other = tmp_path / "other"
    make_bundle(changed, CARD, other)
    other_version = register(other, say=said.append)
    assert other_version != version
    assert str(registry.version_by_alias(client, registry.CHAMPION).version) == version  # type: ignore[union-attr]
