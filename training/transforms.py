"""Every image transform the project uses, in one module.

The model contract: a network sees ``uint8 [N, H, W, 3]`` RGB and starts with
:class:`InputNormalization` (float, /255, mean/std, NHWC→NCHW). Training applies it on the
device; the ONNX export bakes the same module into the graph, so there is no second copy of
the normalisation anywhere. Photos are resized by :func:`imaging.resize_for_model`, the
function the gateway and the bulk scorer use too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torchvision.transforms import v2

from imaging import load_for_model

# Label index order is the contract between training, export and serving.
CLASS_NAMES: tuple[str, ...] = ("cat", "dog")
IMAGE_SIZE = 224
# ImageNet statistics: pets photos are ImageNet-like, and pretrained ResNet weights expect them.
MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


class InputNormalization(nn.Module):
    """uint8 NHWC RGB → normalised float NCHW. First layer of every exported graph."""

    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, mean: tuple[float, ...] = MEAN, std: tuple[float, ...] = STD) -> None:
        super().__init__()
        # Folding /255 into the scale keeps it to one multiply-add per pixel.
        scale = torch.tensor([1.0 / (255.0 * s) for s in std]).view(1, 3, 1, 1)
        shift = torch.tensor([-m / s for m, s in zip(mean, std, strict=True)]).view(1, 3, 1, 1)
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).to(torch.float32)
        return x * self.scale + self.shift


@dataclass(frozen=True, kw_only=True)
class EvalTransform:
    """Photo bytes → uint8 [size, size, 3], exactly as served."""

    image_size: int = IMAGE_SIZE

    def __call__(self, data: bytes) -> np.ndarray:
        return load_for_model(data, self.image_size)


@dataclass(frozen=True, kw_only=True)
class TrainTransform:
    """Augmentation on a cached uint8 HWC image; returns uint8 HWC so the batch keeps the contract.

    The original design's list: horizontal flip, rotation, brightness/contrast, noise
    (plus a mild random crop, which helps most on small data sets).
    """

    image_size: int = IMAGE_SIZE
    hflip_prob: float = 0.5
    rotation_degrees: float = 15.0
    crop_scale: tuple[float, float] = (0.6, 1.0)
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.2
    noise_std: float = 0.03  # in units of full scale (255)

    def __post_init__(self) -> None:
        # crop_scale (1, 1) means "no crop": RandomResizedCrop would still jitter the aspect ratio.
        crop: nn.Module = (
            v2.Resize((self.image_size, self.image_size), antialias=True)
            if self.crop_scale[0] >= 1.0
            else v2.RandomResizedCrop(self.image_size, scale=self.crop_scale, antialias=True)
        )
        ops: list[nn.Module] = [crop]
        if self.hflip_prob > 0:
            ops.append(v2.RandomHorizontalFlip(self.hflip_prob))
        if self.rotation_degrees > 0:
            ops.append(v2.RandomRotation(self.rotation_degrees))
        if self.brightness or self.contrast or self.saturation:
            ops.append(
                v2.ColorJitter(brightness=self.brightness, contrast=self.contrast, saturation=self.saturation)
            )
        object.__setattr__(self, "_pipeline", v2.Compose(ops))

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        chw = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        out: torch.Tensor = self._pipeline(chw)  # type: ignore[attr-defined]
        if self.noise_std > 0:
            noise = torch.randn(out.shape) * (self.noise_std * 255.0)
            out = (out.to(torch.float32) + noise).round().clamp(0, 255).to(torch.uint8)
        return out.permute(1, 2, 0).contiguous()


@dataclass(frozen=True)
class MixedBatch:
    """A batch after mixup/cutmix: the loss is ``lam * CE(y_a) + (1 - lam) * CE(y_b)``."""

    images: torch.Tensor  # uint8 NHWC, so the model still sees the serving contract
    labels_a: torch.Tensor
    labels_b: torch.Tensor
    lam: float


def mix_batch(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
    generator: np.random.Generator,
) -> MixedBatch:
    """Mixup or CutMix (one of the enabled ones, chosen at random) on a uint8 NHWC batch.

    Mixing happens in uint8 space: normalisation is affine, so blending raw pixels and then
    normalising equals blending normalised pixels up to rounding, and the model keeps its input
    contract. Each sample is paired with its neighbour in a rolled batch (as torchvision does).
    """
    modes = [m for m, a in (("mixup", mixup_alpha), ("cutmix", cutmix_alpha)) if a > 0]
    if not modes or images.shape[0] < 2:
        return MixedBatch(images, labels, labels, 1.0)
    mode = modes[int(generator.integers(len(modes)))]
    partner_images, partner_labels = images.roll(1, 0), labels.roll(1, 0)
    if mode == "mixup":
        lam = float(generator.beta(mixup_alpha, mixup_alpha))
        mixed = images.to(torch.float32) * lam + partner_images.to(torch.float32) * (1.0 - lam)
        return MixedBatch(mixed.round().clamp(0, 255).to(torch.uint8), labels, partner_labels, lam)
    lam = float(generator.beta(cutmix_alpha, cutmix_alpha))
    _, h, w, _ = images.shape
    cut_h, cut_w = round(h * (1.0 - lam) ** 0.5), round(w * (1.0 - lam) ** 0.5)
    cy, cx = int(generator.integers(h)), int(generator.integers(w))
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    mixed = images.clone()
    mixed[:, y0:y1, x0:x1, :] = partner_images[:, y0:y1, x0:x1, :]
    # The box may be clipped at the border: weight the labels by the area actually pasted.
    lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
    return MixedBatch(mixed, labels, partner_labels, lam)
