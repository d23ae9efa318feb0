"""Model zoo: ``get_model(name, ...)`` returns a network on normalised float NCHW input.

:class:`PetClassifier` puts :class:`~training.transforms.InputNormalization` in front, so the
module that is trained, evaluated and exported takes the uint8 NHWC contract directly.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlparse

import torch
from torch import nn

from training.transforms import MEAN, STD, InputNormalization


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SimpleCNN(nn.Module):
    """Baseline: four conv + BN + max-pool blocks, global pooling, dropout, linear head."""

    def __init__(self, num_classes: int = 2, dropout_rate: float = 0.5, width: int = 32) -> None:
        super().__init__()
        chans = [3, width, width * 2, width * 4, width * 8]
        blocks: list[nn.Module] = []
        for cin, cout in itertools.pairwise(chans):
            blocks += [_conv_bn(cin, cout), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout_rate), nn.Linear(chans[-1], num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn(cin, cout, stride),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip: nn.Module = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class ImprovedCNN(nn.Module):
    """Residual network sized for training from scratch on a CPU: a stem and four stages."""

    def __init__(self, num_classes: int = 2, dropout_rate: float = 0.5, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv_bn(3, width, stride=2), _conv_bn(width, width))
        stages: list[nn.Module] = []
        cin = width
        for i, cout in enumerate([width, width * 2, width * 4, width * 8]):
            stride = 1 if i == 0 else 2
            stages += [ResidualBlock(cin, cout, stride), ResidualBlock(cout, cout, 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout_rate), nn.Linear(cin, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


# ImageNet weights: `pretrained: imagenet` (or `true`) fetches torchvision's own file for the model.
IMAGENET = "imagenet"
# torchvision's Weights enum per model; the URL's file name carries the first digits of its sha256.
_TORCHVISION_WEIGHTS: dict[str, tuple[str, str]] = {
    "resnet18": ("ResNet18_Weights", "IMAGENET1K_V1"),
    "mobilenet_v3_small": ("MobileNet_V3_Small_Weights", "IMAGENET1K_V1"),
    "efficientnet_b0": ("EfficientNet_B0_Weights", "IMAGENET1K_V1"),
}
PRETRAINED_MODELS: tuple[str, ...] = tuple(_TORCHVISION_WEIGHTS)
_HASHED_NAME = re.compile(r"-[a-f0-9]{8,}\.[A-Za-z0-9]+$")


class PretrainedWeightsError(RuntimeError):
    """ImageNet weights that could not be found, downloaded or verified; the message says what to do."""


def imagenet_weights_url(name: str) -> str:
    """torchvision's download URL for ``name``'s ImageNet weights."""
    import torchvision.models

    enum_name, member = _TORCHVISION_WEIGHTS[name]
    url: str = getattr(getattr(torchvision.models, enum_name), member).url
    return url


def is_weights_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def check_pretrained(name: str, pretrained: bool | str | Path) -> str | None:
    """Why ``pretrained`` cannot work for model ``name`` (None when it can); no file access."""
    if not pretrained:
        return None
    if name not in PRETRAINED_MODELS:
        return f"pretrained weights exist only for {', '.join(PRETRAINED_MODELS)}, not {name!r}"
    if isinstance(pretrained, str) and is_weights_url(pretrained):
        file_name = Path(urlparse(pretrained).path).name
        if not _HASHED_NAME.search(file_name):
            # torch.hub verifies a download only against the hash in its file name; without one,
            # whatever the server sends would be trained on unchecked.
            return (
                f"pretrained URL {pretrained!r}: the file name must carry its sha256 prefix "
                "(like torchvision's resnet18-f37072fd.pth) so the download can be verified"
            )
    return None


def _weights_folder() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def imagenet_state_dict(name: str, pretrained: bool | str | Path) -> dict[str, torch.Tensor]:
    """ImageNet weights for ``name``: a local file, or a download into the torch hub cache.

    ``pretrained`` is ``True``/``"imagenet"`` (torchvision's URL), another ``http(s)://`` URL whose
    file name carries its sha256 prefix (a mirror), or a file path. A download goes through
    ``torch.hub.load_state_dict_from_url(check_hash=True)``, torchvision's own cache and hash check.
    Never a silent random init: every failure raises :class:`PretrainedWeightsError`.
    """
    problem = check_pretrained(name, pretrained)
    if problem:
        raise PretrainedWeightsError(problem)
    if isinstance(pretrained, Path) or (
        isinstance(pretrained, str) and pretrained != IMAGENET and not is_weights_url(pretrained)
    ):
        path = Path(pretrained)
        if not path.is_file():
            raise PretrainedWeightsError(
                f"pretrained weights file not found: {path}. Set pretrained: {IMAGENET} to download "
                f"{imagenet_weights_url(name)} into {_weights_folder()}, or give the path of that file."
            )
        state: dict[str, torch.Tensor] = torch.load(path, map_location="cpu", weights_only=True)
        return state
    url = (
        pretrained
        if isinstance(pretrained, str) and is_weights_url(pretrained)
        else imagenet_weights_url(name)
    )
    folder = _weights_folder()
    file_name = Path(urlparse(url).path).name
    if not (folder / file_name).is_file():
        print(f"downloading {url} into {folder} (sha256 checked)", file=sys.stderr, flush=True)
    try:
        state = torch.hub.load_state_dict_from_url(
            url,
            model_dir=str(folder),
            map_location="cpu",
            progress=sys.stderr.isatty(),
            check_hash=True,
            weights_only=True,
        )
    except (URLError, OSError) as exc:  # HTTPError is both; no network, DNS, refused, 404 …
        reason = getattr(exc, "reason", None) or exc
        raise PretrainedWeightsError(
            f"cannot download the ImageNet weights for {name} ({reason}). Offline? Download {url} "
            f"on a machine with internet and put the file, named {file_name}, in {folder} "
            "(the torch hub cache; TORCH_HOME moves it), or set pretrained: <path of the file>."
        ) from exc
    except RuntimeError as exc:
        if "invalid hash value" not in str(exc):
            raise
        raise PretrainedWeightsError(
            f"{url}: the download does not match the sha256 prefix in its name ({exc}); "
            f"nothing was kept in {folder}."
        ) from exc
    return state


def _torchvision_network(
    name: str, num_classes: int, dropout_rate: float, pretrained: bool | str | Path
) -> nn.Module:
    """A torchvision network with ImageNet weights (when asked) and a fresh ``num_classes`` head."""
    import torchvision.models

    model: nn.Module = getattr(torchvision.models, name)(weights=None)
    if pretrained:
        # The whole 1000-class state dict loads strictly first, so a wrong file cannot half-load.
        model.load_state_dict(imagenet_state_dict(name, pretrained))
    # The last Linear layer (in module order) is the 1000-class output of all three networks.
    in_features = [m for m in model.modules() if isinstance(m, nn.Linear)][-1].in_features
    dropout, linear = nn.Dropout(dropout_rate), nn.Linear(in_features, num_classes)
    classifier = model.get_submodule("fc" if name == "resnet18" else "classifier")
    if name == "mobilenet_v3_small" and isinstance(classifier, nn.Sequential):
        # Keep the pretrained 576→1024 projection; replace only its dropout and the last layer.
        classifier[2], classifier[3] = dropout, linear
    else:
        setattr(model, "fc" if name == "resnet18" else "classifier", nn.Sequential(dropout, linear))
    return model


def _scratch(cls: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    return lambda num_classes, dropout_rate, pretrained, **kw: cls(num_classes, dropout_rate, **kw)


def _torchvision(name: str) -> Callable[..., nn.Module]:
    return lambda num_classes, dropout_rate, pretrained, **kw: _torchvision_network(
        name, num_classes, dropout_rate, pretrained
    )


_MODELS: dict[str, Callable[..., nn.Module]] = {
    "simple_cnn": _scratch(SimpleCNN),
    "improved_cnn": _scratch(ImprovedCNN),
    **{name: _torchvision(name) for name in PRETRAINED_MODELS},
}
MODEL_NAMES: tuple[str, ...] = tuple(_MODELS)


def get_model(
    name: str,
    num_classes: int = 2,
    dropout_rate: float = 0.5,
    pretrained: bool | str | Path = False,
    **kwargs: int,
) -> nn.Module:
    """A network on normalised float NCHW input (see :class:`PetClassifier` for the uint8 contract)."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
    if pretrained and name not in PRETRAINED_MODELS:
        raise ValueError(check_pretrained(name, pretrained))
    return _MODELS[name](num_classes=num_classes, dropout_rate=dropout_rate, pretrained=pretrained, **kwargs)


class PetClassifier(nn.Module):
    """uint8 NHWC RGB in, logits out: the trained network behind the shared input normalisation."""

    def __init__(
        self, network: nn.Module, mean: tuple[float, ...] = MEAN, std: tuple[float, ...] = STD
    ) -> None:
        super().__init__()
        self.normalize = InputNormalization(mean, std)
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(self.normalize(images))
