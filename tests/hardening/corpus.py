"""The hostile-input corpus: each case is bytes, a file name and the statuses a correct gateway may give.

Built from the gateway tests' synthetic photo so every valid case is a real, decodable image.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

from tests.support.photos import photo

OK = frozenset({200})


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    filename: str
    expected: frozenset[int]
    error: str | None = None  # the JSON error code a refusal must carry, when it is pinned down


def _save(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _rgb(seed: int = 1, size: tuple[int, int] = (160, 120)) -> Image.Image:
    return Image.open(io.BytesIO(photo(seed, size=size))).convert("RGB")


@cache
def png_bomb() -> bytes:
    """12000×9000 greyscale zeros: ~108 MP that deflate to about 100 kB."""
    return _save(Image.new("L", (12000, 9000)), "PNG", optimize=False, compress_level=9)


def animated_gif() -> bytes:
    frames = [_rgb(seed).quantize(64) for seed in (1, 2, 3)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def png_16bit() -> bytes:
    ramp = (np.arange(120 * 160, dtype=np.uint32).reshape(120, 160) * 3 % 65536).astype(np.uint16)
    return _save(Image.fromarray(ramp), "PNG")


def zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("cat.jpg", photo(1))
    return buf.getvalue()


def cases() -> list[Case]:
    jpeg = photo(1)
    rgba = _rgb().convert("RGBA")
    rgba.putalpha(128)
    refused_415 = frozenset({415})
    return [
        Case("zero_bytes", b"", "empty.jpg", frozenset({400}), "empty"),
        Case("one_byte", b"\xff", "one.jpg", refused_415, "unsupported_format"),
        Case("truncated_jpeg", jpeg[: len(jpeg) // 2], "cut.jpg", frozenset({422}), "corrupt"),
        Case("jpeg_header_only", jpeg[:3], "head.jpg", frozenset({422}), "corrupt"),
        Case("jpeg_trailing_garbage", jpeg + b"\x00GARBAGE" * 512, "tail.jpg", OK),
        Case("png_bomb_12000x9000", png_bomb(), "bomb.png", frozenset({413}), "too_many_pixels"),
        Case("animated_gif", animated_gif(), "anim.gif", OK),
        Case("png_16bit", png_16bit(), "deep.png", OK),
        Case("cmyk_jpeg", _save(_rgb().convert("CMYK"), "JPEG"), "cmyk.jpg", OK),
        Case("grayscale_jpeg", _save(_rgb().convert("L"), "JPEG"), "grey.jpg", OK),
        Case("rgba_png", _save(rgba, "PNG"), "alpha.png", OK),
        Case("palette_png_transparency", _save(_rgb().quantize(16), "PNG", transparency=0), "p.png", OK),
        Case("webp", _save(_rgb(), "WEBP"), "cat.webp", OK),
        Case("bmp", _save(_rgb(), "BMP"), "cat.bmp", OK),
        Case("one_pixel_png", _save(Image.new("RGB", (1, 1)), "PNG"), "dot.png", OK),
        Case("tiff", _save(_rgb(), "TIFF"), "cat.tiff", refused_415, "unsupported_format"),
        Case(
            "svg_named_jpg",
            b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>',
            "cat.jpg",
            refused_415,
            "unsupported_format",
        ),
        Case("html_named_jpg", b"<!doctype html><html><body>cat</body></html>", "cat.jpg", refused_415),
        Case("zip_named_jpg", zip_bytes(), "cat.jpg", refused_415, "unsupported_format"),
        Case("riff_not_webp", b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(64), "cat.webp", refused_415),
        Case("gif_header_only", b"GIF89a", "g.gif", frozenset({422}), "corrupt"),
        Case("bmp_header_only", b"BM" + bytes(10), "b.bmp", frozenset({422}), "corrupt"),
    ]
