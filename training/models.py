"""Model zoo: ``get_model(name, ...)`` returns a network on normalised float NCHW input.

:class:`PetClassifier` puts :class:`~training.transforms.InputNormalization` in front, so the
module that is trained, evaluated and exported takes the uint8 NHWC contract directly.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

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


def _resnet18(num_classes: int, dropout_rate: float, pretrained: bool | str | Path) -> nn.Module:
    from torchvision.models import ResNet18_Weights, resnet18

    model = resnet18(weights=None)
    if pretrained:
        model.load_state_dict(_imagenet_state_dict(pretrained, ResNet18_Weights.IMAGENET1K_V1.url))
    model.fc = nn.Sequential(nn.Dropout(dropout_rate), nn.Linear(model.fc.in_features, num_classes))
    return model


def _imagenet_state_dict(pretrained: bool | str | Path, url: str) -> dict[str, torch.Tensor]:
    """ImageNet weights from a given file or the torch hub cache; never a silent random init."""
    if isinstance(pretrained, str | Path):
        path = Path(pretrained)
    else:
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights not found at {path}. Download {url} into "
            f"{Path(torch.hub.get_dir()) / 'checkpoints'} (torch hub cache) or pass the file path "
            "as pretrained=<path> (training config: pretrained: <path>)."
        )
    state: dict[str, torch.Tensor] = torch.load(path, map_location="cpu", weights_only=True)
    return state


_MODELS: dict[str, Callable[..., nn.Module]] = {
    "simple_cnn": lambda num_classes, dropout_rate, pretrained, **kw: SimpleCNN(
        num_classes, dropout_rate, **kw
    ),
    "improved_cnn": lambda num_classes, dropout_rate, pretrained, **kw: ImprovedCNN(
        num_classes, dropout_rate, **kw
    ),
    "resnet18": lambda num_classes, dropout_rate, pretrained, **kw: _resnet18(
        num_classes, dropout_rate, pretrained
    ),
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
    if pretrained and name != "resnet18":
        raise ValueError(f"pretrained weights exist only for resnet18, not {name!r}")
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
