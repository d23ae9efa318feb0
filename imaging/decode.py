"""Bytes → RGB → model-sized uint8 array, with the safety checks a public upload needs.

The order matters: the format is sniffed from the signature (never the file name),
byte and pixel caps are enforced before any pixel data is decoded, and decoding is
complete (``load()``), so truncated files fail here rather than mid-epoch or mid-request.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps

# Truncated files must raise, not silently decode as grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Signature → Pillow format name. Order is irrelevant: signatures do not overlap.
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"BM", 0, "BMP"),
    (b"WEBP", 8, "WEBP"),  # RIFF container, checked together with b"RIFF" below
)
SUPPORTED_FORMATS: frozenset[str] = frozenset(name for _, _, name in _SIGNATURES)

# White is what a transparent pet photo looks like on a web page.
_BACKGROUND = (255, 255, 255)


class ImageError(ValueError):
    """A file that cannot become a model input; ``kind`` is a stable machine-readable reason."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True, kw_only=True)
class DecodeLimits:
    """Caps enforced before decoding; defaults suit public uploads of phone photos."""

    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 50_000_000  # a 50 MP phone photo is the largest honest upload
    min_side: int = 1
    # A progressive JPEG is decoded once per scan (SOS marker); libjpeg's default script has 10. A few
    # hundred KB with thousands of repeated scans cost minutes of CPU while staying under the pixel cap.
    max_jpeg_scans: int = 64
    # Megapixels × scans (see DecodeCost): ~2-3 ms of CPU per unit on a 2-core CI machine, so the
    # default bounds one decode at ~2 s: a 50 MP progressive photo (10 scans) is 500.
    max_cost: float = 1000.0


@dataclass(frozen=True)
class DecodeCost:
    """What decoding a file will cost, read from its header without decoding any pixel."""

    format: str
    width: int
    height: int
    scans: int  # JPEG SOS markers (1 for a baseline JPEG); 1 for other formats

    @property
    def cost(self) -> float:
        """Megapixels × scans: entropy decoding touches every block once per scan."""
        return self.width * self.height / 1e6 * max(self.scans, 1)


def jpeg_scans(data: bytes) -> int:
    """SOS markers in the file. Entropy-coded data never holds ``FF DA`` (an ``FF`` there is stuffed
    with ``00`` or is a restart marker), so a byte count is exact up to an EXIF thumbnail's own scan."""
    return data.count(b"\xff\xda")


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB, EXIF orientation applied, fully loaded
    format: str  # what the bytes are, whatever the file was called
    original_size: tuple[int, int]  # (width, height) as stored, before draft scaling
    original_mode: str


@contextlib.contextmanager
def _quiet_pillow() -> Iterator[None]:
    """Silence Pillow's warnings while decoding.

    Our own pixel cap is the bomb check, and "Corrupt EXIF data" (common in scraped photo
    sets) only means the orientation is skipped; printed thousands of times it would bury
    the ingest report, and under ``-W error`` it would reject a decodable photo.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        yield


def sniff_format(data: bytes) -> str | None:
    """The Pillow format name from the file signature, or None if it is not a supported image."""
    for signature, offset, name in _SIGNATURES:
        if data[offset : offset + len(signature)] == signature:
            if name == "WEBP" and data[:4] != b"RIFF":
                continue
            return name
    return None


def inspect_image(data: bytes, *, limits: DecodeLimits | None = None) -> DecodeCost:
    """Check every cap that can be checked from the header (bytes, format, pixels, scans, cost) and
    return the decode cost; raises :class:`ImageError`. Cheap: no pixel is decoded."""
    return _open_checked(data, limits or DecodeLimits())[1]


def _open_checked(data: bytes, limits: DecodeLimits) -> tuple[Image.Image, DecodeCost]:
    if not data:
        raise ImageError("empty", "the file is empty")
    if len(data) > limits.max_bytes:
        raise ImageError("too_large", f"{len(data)} bytes exceeds the limit of {limits.max_bytes} bytes")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageError(
            "unsupported_format",
            f"not a supported image (expected one of {', '.join(sorted(SUPPORTED_FORMATS))})",
        )
    try:
        with _quiet_pillow():
            img: Image.Image = Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError as exc:
        raise ImageError("too_many_pixels", "image dimensions exceed the pixel limit") from exc
    except Exception as exc:  # Pillow raises many types for malformed headers
        raise ImageError("corrupt", f"cannot read {fmt} header") from exc

    width, height = img.size
    if width * height > limits.max_pixels:
        raise ImageError(
            "too_many_pixels", f"{width}x{height} exceeds the limit of {limits.max_pixels} pixels"
        )
    if min(width, height) < limits.min_side:
        raise ImageError("too_small", f"{width}x{height} is below the minimum side of {limits.min_side}px")
    scans = jpeg_scans(data) if fmt == "JPEG" else 1
    if scans > limits.max_jpeg_scans:
        raise ImageError(
            "too_many_scans", f"the JPEG has {scans} scans; the limit is {limits.max_jpeg_scans}"
        )
    cost = DecodeCost(fmt, width, height, scans)
    if cost.cost > limits.max_cost:
        raise ImageError(
            "too_costly",
            f"{width}x{height} with {scans} scans costs {cost.cost:.0f} megapixel-scans to decode; "
            f"the limit is {limits.max_cost:g}",
        )
    return img, cost


def decode_image(
    data: bytes,
    *,
    limits: DecodeLimits | None = None,
    draft_size: int | None = None,
) -> DecodedImage:
    """Decode ``data`` fully into an RGB image.

    ``draft_size`` lets JPEGs decode at a reduced DCT scale that is still at least
    ``draft_size`` pixels on each side, which is several times faster for large photos.
    """
    img, cost = _open_checked(data, limits or DecodeLimits())
    fmt, width, height = cost.format, cost.width, cost.height
    original_mode = img.mode
    if draft_size is not None and fmt == "JPEG":
        img.draft("RGB", (draft_size, draft_size))
    try:
        with _quiet_pillow():
            img.load()
    except Exception as exc:
        raise ImageError("corrupt", f"{fmt} data is truncated or corrupt") from exc
    # A malformed EXIF block must not reject an otherwise good photo.
    with contextlib.suppress(Exception), _quiet_pillow():
        img = ImageOps.exif_transpose(img)
    return DecodedImage(to_rgb(img), fmt, (width, height), original_mode)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode → 8-bit RGB; transparency is composited over white."""
    if img.mode == "RGB" and "transparency" not in img.info:
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # Pillow's own I→L conversion clips at 255 instead of rescaling 16-bit data.
        arr = np.asarray(img, dtype=np.float64)
        # I;16 is 16-bit by definition (a dark photo must stay dark); for 32-bit I/F the range
        # is unknown, so only values beyond 8 bits show that they are 16-bit.
        sixteen_bit = img.mode.startswith("I;16") or arr.max(initial=0) > 255
        scale = 257.0 if sixteen_bit else 1.0
        grey = np.clip(np.round(arr / scale), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    # A tRNS chunk gives P, L and RGB images transparency without an alpha band.
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def resize_for_model(img: Image.Image, size: int) -> np.ndarray:
    """The model's view of a photo: squashed to ``size``×``size`` with antialiased bilinear.

    Squash (not crop) keeps the whole animal in frame whatever the aspect ratio.
    """
    if img.mode != "RGB":
        img = to_rgb(img)
    resized = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def prepare_for_model(
    data: bytes, size: int, *, limits: DecodeLimits | None = None
) -> tuple[np.ndarray, DecodedImage]:
    """Bytes → (uint8 [size, size, 3], what was decoded): the model input and the facts about it."""
    decoded = decode_image(data, limits=limits, draft_size=size)
    return resize_for_model(decoded.image, size), decoded


def load_for_model(data: bytes, size: int, *, limits: DecodeLimits | None = None) -> np.ndarray:
    """Bytes → uint8 [size, size, 3]. The one path used by preprocessing, serving and scoring."""
    return prepare_for_model(data, size, limits=limits)[0]


# Rec. 601 luma: the brightness the drift baseline (export) and the live monitor (gateway) share.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def brightness(images: np.ndarray) -> np.ndarray:
    """Mean luma (0–255) per image of a uint8 ``[N, H, W, 3]`` batch (or one ``[H, W, 3]`` image)."""
    batch = images[None] if images.ndim == 3 else images
    return np.asarray(batch.reshape(len(batch), -1, 3).astype(np.float64) @ _LUMA).mean(axis=1)
