"""The model zoo: forward shapes, the uint8 input contract and pretrained-weight handling."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.models import MODEL_NAMES, PetClassifier, get_model
from training.transforms import MEAN, STD, InputNormalization


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_each_model_maps_a_batch_to_two_logits(name: str) -> None:
    torch.manual_seed(0)
    model = PetClassifier(get_model(name, num_classes=2, dropout_rate=0.5)).eval()
    images = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        out = model(images)
    assert out.shape == (3, 2) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["simple_cnn", "improved_cnn"])
def test_width_scales_the_network(name: str) -> None:
    small = sum(p.numel() for p in get_model(name, width=8).parameters())
    large = sum(p.numel() for p in get_model(name, width=16).parameters())
    assert large > 3 * small


def test_simple_cnn_has_four_conv_bn_blocks_and_improved_cnn_is_residual() -> None:
    simple = get_model("simple_cnn")
    assert sum(isinstance(m, torch.nn.Conv2d) for m in simple.modules()) == 4
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in simple.modules()) == 4
    from training.models import ResidualBlock

    assert any(isinstance(m, ResidualBlock) for m in get_model("improved_cnn").modules())


def test_input_normalization_matches_manual_normalisation() -> None:
    images = torch.randint(0, 256, (2, 5, 7, 3), dtype=torch.uint8)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    expected = (images.permute(0, 3, 1, 2).float() / 255.0 - mean) / std
    torch.testing.assert_close(InputNormalization()(images), expected, rtol=1e-5, atol=1e-5)


def test_unknown_model_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="simple_cnn, improved_cnn, resnet18"):
        get_model("vgg16")


def test_pretrained_only_for_resnet18() -> None:
    with pytest.raises(ValueError, match="only for resnet18"):
        get_model("simple_cnn", pretrained=True)


def test_missing_pretrained_weights_say_how_to_provide_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match=r"resnet18-f37072fd\.pth.*pretrained=<path>"):
        get_model("resnet18", pretrained=True)
    with pytest.raises(FileNotFoundError, match="not found"):
        get_model("resnet18", pretrained=str(tmp_path / "absent.pth"))


def test_pretrained_weights_load_from_a_file_and_from_the_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchvision.models import resnet18

    torch.manual_seed(1)
    reference = resnet18(weights=None)
    weights = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), weights)
    model = get_model("resnet18", pretrained=str(weights))
    torch.testing.assert_close(model.conv1.weight, reference.conv1.weight)

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    cached = tmp_path / "hub" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"  # $TORCH_HOME/hub
    cached.parent.mkdir(parents=True)
    cached.write_bytes(weights.read_bytes())
    torch.testing.assert_close(get_model("resnet18", pretrained=True).layer1[0].conv1.weight,
                               reference.layer1[0].conv1.weight)  # fmt: skip
