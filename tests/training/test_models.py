"""The model zoo: forward shapes, the uint8 input contract and pretrained-weight handling."""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import torchvision.models

from serving.processes import free_port
from training.config import ConfigError, load_config
from training.models import (
    MODEL_NAMES,
    PetClassifier,
    PretrainedWeightsError,
    get_model,
    imagenet_weights_url,
)
from training.train import main as train_main
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


def test_pretrained_only_for_torchvision_models() -> None:
    with pytest.raises(ValueError, match="only for resnet18, mobilenet_v3_small, efficientnet_b0"):
        get_model("simple_cnn", pretrained=True)


# --- ImageNet weights: download through torch.hub's hash check, from a loopback "mirror" ------


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache ($TORCH_HOME/hub/checkpoints) for this test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """A loopback HTTP server for ``folder``; yields its base URL."""

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def imagenet_like_state(name: str, folder: Path, *, seed: int = 1) -> tuple[dict[str, torch.Tensor], str]:
    """A 1000-class state dict for torchvision's ``name``, saved as ``<name>-<sha256[:8]>.pth``."""
    torch.manual_seed(seed)
    state = getattr(torchvision.models, name)(weights=None).state_dict()
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "raw.pth"
    torch.save(state, raw)
    file_name = f"{name}-{hashlib.sha256(raw.read_bytes()).hexdigest()[:8]}.pth"
    raw.rename(folder / file_name)
    return state, file_name


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_imagenet_weights_download_hash_checked_into_the_hub_cache(
    name: str, tmp_path: Path, hub: Path
) -> None:
    state, file_name = imagenet_like_state(name, tmp_path / "mirror")
    with serve_folder(tmp_path / "mirror") as base:
        url = f"{base}/{file_name}"
        cfg = load_config(None, [f"model={name}", f"pretrained={url}"])
        model = get_model(cfg.model, pretrained=cfg.pretrained)
    assert (hub / file_name).read_bytes() == (tmp_path / "mirror" / file_name).read_bytes()
    first_conv = next(k for k in state if k.endswith("weight") and state[k].dim() == 4)
    torch.testing.assert_close(model.state_dict()[first_conv], state[first_conv])
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 2)  # a fresh two-class head

    # The server is gone: the cached file serves the next run, as torchvision's own cache does.
    again = get_model(name, pretrained=url)
    torch.testing.assert_close(again.state_dict()[first_conv], state[first_conv])


def test_a_download_that_does_not_match_its_hash_is_refused_and_not_kept(tmp_path: Path, hub: Path) -> None:
    _, file_name = imagenet_like_state("resnet18", tmp_path / "mirror")
    forged = "resnet18-00000000.pth"  # what a tampered or truncated mirror would serve
    (tmp_path / "mirror" / file_name).rename(tmp_path / "mirror" / forged)
    with (
        serve_folder(tmp_path / "mirror") as base,
        pytest.raises(PretrainedWeightsError, match="does not match the sha256 prefix"),
    ):
        get_model("resnet18", pretrained=f"{base}/{forged}")
    assert not hub.exists() or not any(hub.iterdir())


def test_a_url_without_a_hash_in_its_name_is_refused_before_any_download(hub: Path) -> None:
    with pytest.raises(ConfigError, match="sha256 prefix"):
        load_config(None, ["model=resnet18", "pretrained=http://127.0.0.1:9/weights.pth"])
    with pytest.raises(PretrainedWeightsError, match="sha256 prefix"):
        get_model("resnet18", pretrained="http://127.0.0.1:9/weights.pth")


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0"])
def test_offline_imagenet_weights_fail_naming_the_url_and_the_folder(
    name: str, hub: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No internet here, made certain: torchvision's real URL goes through a proxy that refuses.
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    for var in ("https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(var, f"http://127.0.0.1:{free_port()}")
    url = imagenet_weights_url(name)
    assert url.startswith("https://download.pytorch.org/models/")
    with pytest.raises(PretrainedWeightsError) as caught:
        get_model(name, pretrained="imagenet")
    message = str(caught.value)
    assert f"Download {url}" in message
    assert f"named {url.rsplit('/', 1)[1]}, in {hub}" in message
    assert not hub.exists() or not any(hub.iterdir())


def test_offline_training_fails_in_one_line_before_training(
    hub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}/resnet18-f37072fd.pth"
    assert (
        train_main(["--set", "model=resnet18", "--set", f"pretrained={url}", "--set", "manifest=absent.csv"])
        == 1
    )
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: cannot download the ImageNet weights for resnet18")
    assert "Traceback" not in err and "absent.csv" not in err


def test_pretrained_weights_load_from_a_file_and_from_the_hub_cache(tmp_path: Path, hub: Path) -> None:
    from torchvision.models import resnet18

    torch.manual_seed(1)
    reference = resnet18(weights=None)
    weights = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), weights)
    model = get_model("resnet18", pretrained=str(weights))
    torch.testing.assert_close(model.conv1.weight, reference.conv1.weight)
    with pytest.raises(PretrainedWeightsError, match="not found"):
        get_model("resnet18", pretrained=str(tmp_path / "absent.pth"))

    # Placed by hand where the offline error says: no download is attempted.
    hub.mkdir(parents=True)
    (hub / "resnet18-f37072fd.pth").write_bytes(weights.read_bytes())
    torch.testing.assert_close(get_model("resnet18", pretrained="imagenet").layer1[0].conv1.weight,
                               reference.layer1[0].conv1.weight)  # fmt: skip
