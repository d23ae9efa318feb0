"""imaging.decode: sniffing, caps before decoding, complete decoding and every mode → RGB."""

from __future__ import annotations

import io
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imaging import (
    DecodeLimits,
    ImageError,
    decode_image,
    load_for_model,
    resize_for_model,
    sniff_format,
    to_rgb,
)

Encoder = Callable[..., bytes]  # the `encoder` fixture of conftest.py

# Run in a fresh process; its peak RSS (VmHWM) is reset first, because Linux carries ru_maxrss over
# fork+exec from the parent, and the pytest process (torch loaded) is far larger than the bomb.
_PEAK_RSS_SCRIPT = """
import sys
from pathlib import Path
from imaging import DecodeLimits, ImageError, decode_image

def peak_kib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

data = Path(sys.argv[1]).read_bytes()
limits = DecodeLimits(max_bytes=1 << 30, max_pixels=int(sys.argv[2]))
Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the current RSS
before = peak_kib()
try:
    decode_image(data, limits=limits)
    kind = "accepted"
except ImageError as exc:
    kind = exc.kind
print(kind, peak_kib() - before)
"""


def _decode_peak_kib(path: Path, max_pixels: int) -> tuple[str, int]:
    cmd = [sys.executable, "-c", _PEAK_RSS_SCRIPT, str(path), str(max_pixels)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2])
    kind, grown = out.stdout.split()
    return kind, int(grown)


def _rgb(data: bytes) -> np.ndarray:
    return np.asarray(decode_image(data).image)


def _gradient(width: int = 64, height: int = 48) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None, None]
    arr = np.concatenate(np.broadcast_arrays(x, y, 255 - x), axis=2)
    return Image.fromarray(np.ascontiguousarray(arr), "RGB")


# --- format sniffing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mode"), [("JPEG", "RGB"), ("PNG", "RGB"), ("GIF", "P"), ("BMP", "RGB"), ("WEBP", "RGB")]
)
def test_sniff_recognises_each_supported_format(encoder: Encoder, fmt: str, mode: str) -> None:
    data = encoder(_gradient().convert(mode), fmt)
    assert sniff_format(data) == fmt
    assert decode_image(data).format == fmt


def test_sniff_ignores_non_images_and_other_riff_files() -> None:
    assert sniff_format(b"") is None
    assert sniff_format(b"hello, I am a text file named cat.jpg") is None
    assert sniff_format(b"RIFF\x24\x00\x00\x00WAVEfmt ") is None  # a WAV file is RIFF, not WEBP
    assert sniff_format(b"%PDF-1.7") is None


def test_format_comes_from_content_not_from_a_name(encoder: Encoder) -> None:
    # decode_image never sees a name; a PNG is a PNG whatever the file was called.
    decoded = decode_image(encoder(_gradient(), "PNG"))
    assert decoded.format == "PNG"
    assert decoded.image.mode == "RGB"


# --- rejections with stable kinds ---------------------------------------------------------------


def test_empty_and_unsupported_data() -> None:
    with pytest.raises(ImageError) as empty:
        decode_image(b"")
    assert empty.value.kind == "empty"
    with pytest.raises(ImageError) as text:
        decode_image(b"not an image at all")
    assert text.value.kind == "unsupported_format"


def test_byte_cap_applies_before_decoding(encoder: Encoder) -> None:
    data = encoder(_gradient(), "PNG")
    with pytest.raises(ImageError) as exc:
        decode_image(data, limits=DecodeLimits(max_bytes=len(data) - 1))
    assert exc.value.kind == "too_large"
    decode_image(data, limits=DecodeLimits(max_bytes=len(data)))  # the cap is inclusive


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_truncated_files_are_rejected_not_grey(encoder: Encoder, fmt: str) -> None:
    noise = np.random.default_rng(0).integers(0, 256, size=(96, 96, 3), dtype=np.uint8)
    img = Image.fromarray(noise, "RGB")
    data = encoder(img.convert("P") if fmt == "GIF" else img, fmt)
    with pytest.raises(ImageError) as exc:
        decode_image(data[: len(data) * 2 // 3])
    assert exc.value.kind == "corrupt"


def test_corrupt_header_is_rejected() -> None:
    with pytest.raises(ImageError) as exc:
        decode_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    assert exc.value.kind == "corrupt"


def test_min_side(encoder: Encoder) -> None:
    data = encoder(_gradient(40, 8), "PNG")
    with pytest.raises(ImageError) as exc:
        decode_image(data, limits=DecodeLimits(min_side=10))
    assert exc.value.kind == "too_small"
    assert decode_image(data, limits=DecodeLimits(min_side=8)).original_size == (40, 8)


def test_pixel_bomb_is_rejected_by_the_cap(bomb_png: bytes) -> None:
    assert len(bomb_png) < 200_000
    with pytest.raises(ImageError) as exc:
        decode_image(bomb_png)
    assert exc.value.kind == "too_many_pixels"
    assert "12000x9000" in exc.value.detail


def test_pixel_bomb_is_rejected_without_allocating_it(tmp_path: Path, bomb_png: bytes) -> None:
    """Peak memory of a fresh process: decoding the bomb would add ≥ 108 MB; rejecting it must not."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png)
    kind, grown_kib = _decode_peak_kib(bomb, DecodeLimits().max_pixels)
    assert kind == "too_many_pixels"
    assert grown_kib < 20 * 1024, f"peak RSS grew by {grown_kib} KiB while rejecting the bomb"
    # The measurement can fail: with the cap lifted, decoding really allocates the 108 MB.
    kind, grown_kib = _decode_peak_kib(bomb, 200_000_000)
    assert kind == "accepted"
    assert grown_kib > 100 * 1024


# --- every mode → RGB -----------------------------------------------------------------------------


def test_rgba_is_composited_over_white(encoder: Encoder) -> None:
    arr = np.zeros((4, 4, 4), dtype=np.uint8)
    arr[..., 0] = 255  # red everywhere
    arr[0, 0, 3] = 0  # transparent
    arr[0, 1, 3] = 128  # half
    arr[0, 2, 3] = 255  # opaque
    rgb = _rgb(encoder(Image.fromarray(arr, "RGBA"), "PNG"))
    assert rgb[0, 0].tolist() == [255, 255, 255]
    assert np.abs(rgb[0, 1].astype(int) - [255, 127, 127]).max() <= 1
    assert rgb[0, 2].tolist() == [255, 0, 0]


def test_la_is_composited_over_white(encoder: Encoder) -> None:
    arr = np.zeros((2, 2, 2), dtype=np.uint8)  # black
    arr[0, 0, 1] = 0
    arr[0, 1, 1] = 255
    img = Image.fromarray(arr, "LA")
    rgb = _rgb(encoder(img, "PNG"))
    assert rgb[0, 0].tolist() == [255, 255, 255]
    assert rgb[0, 1].tolist() == [0, 0, 0]


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_is_composited_over_white(encoder: Encoder, fmt: str) -> None:
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 0, 0, 255] + [0] * (254 * 3))  # index 0 black, 1 blue
    img.putpixel((0, 0), 0)
    rgb = _rgb(encoder(img, fmt, transparency=0))
    assert rgb[0, 0].tolist() == [255, 255, 255]
    assert rgb[1, 1].tolist() == [0, 0, 255]


@pytest.mark.parametrize(("mode", "key"), [("L", 0), ("RGB", (0, 0, 0))])
def test_trns_transparency_without_alpha_band(encoder: Encoder, mode: str, key: object) -> None:
    img = Image.new(mode, (3, 3), 0)
    img.putpixel((1, 1), 200 if mode == "L" else (200, 10, 10))
    rgb = _rgb(encoder(img, "PNG", transparency=key))
    assert rgb[0, 0].tolist() == [255, 255, 255]  # the transparent key colour
    assert rgb[1, 1].tolist() == ([200] * 3 if mode == "L" else [200, 10, 10])


def test_sixteen_bit_grey_is_scaled_not_clipped(encoder: Encoder) -> None:
    arr = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    img = Image.fromarray(arr)
    assert img.mode == "I;16"
    decoded = decode_image(encoder(img, "PNG"))
    assert decoded.original_mode == "I;16"
    assert np.asarray(decoded.image)[0, :, 0].tolist() == [0, 1, 128, 255]


def test_dark_sixteen_bit_photo_stays_dark(encoder: Encoder) -> None:
    # All values fit in 8 bits, but they are 16-bit values: 200/65535 is almost black.
    img = Image.fromarray(np.full((2, 2), 200, dtype=np.uint16))
    assert _rgb(encoder(img, "PNG")).max() <= 1


def test_cmyk_jpeg(encoder: Encoder) -> None:
    img = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red in CMYK
    decoded = decode_image(encoder(img, "JPEG", quality=95))
    assert decoded.original_mode == "CMYK"
    r, g, b = np.asarray(decoded.image)[8, 8].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_grey_jpeg_and_bmp_and_webp(encoder: Encoder) -> None:
    grey = _rgb(encoder(_gradient().convert("L"), "JPEG"))
    assert grey.shape == (48, 64, 3)
    assert (grey[..., 0] == grey[..., 1]).all()
    assert np.array_equal(_rgb(encoder(_gradient(), "BMP")), np.asarray(_gradient()))
    assert np.array_equal(_rgb(encoder(_gradient(), "WEBP", lossless=True)), np.asarray(_gradient()))


def test_animated_gif_gives_its_first_frame(encoder: Encoder) -> None:
    frames = [Image.new("RGB", (8, 8), colour).convert("P") for colour in ((255, 0, 0), (0, 0, 255))]
    data = encoder(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
    assert _rgb(data)[4, 4].tolist() == [255, 0, 0]


def test_exif_orientation_is_applied(encoder: Encoder) -> None:
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 10, 20))  # red strip on the left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    decoded = decode_image(encoder(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert decoded.original_size == (40, 20)
    assert decoded.image.size == (20, 40)
    rgb = np.asarray(decoded.image).astype(int)
    # Rotated clockwise, the stored left strip becomes the top rows.
    assert rgb[2, 10, 0] > 200 and rgb[2, 10, 2] < 60
    assert rgb[37, 10, 2] > 200


@pytest.mark.parametrize(
    "exif",
    [
        b"Exif\x00\x00" + b"\xff" * 30,  # not TIFF at all
        b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff" + b"\x01" * 40,  # entries run past the end
    ],
)
def test_broken_exif_does_not_reject_a_good_photo_or_warn(encoder: Encoder, exif: bytes) -> None:
    data = encoder(_gradient(), "JPEG", exif=exif)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's "Corrupt EXIF data" must not leak (nor fail us)
        assert decode_image(data).image.size == (64, 48)


def test_to_rgb_is_identity_for_plain_rgb() -> None:
    img = _gradient()
    assert to_rgb(img) is img


# --- the model view ----------------------------------------------------------------------------


def test_load_for_model_shape_and_equivalence(encoder: Encoder) -> None:
    data = encoder(_gradient(300, 200), "PNG")
    arr = load_for_model(data, 64)
    assert arr.shape == (64, 64, 3) and arr.dtype == np.uint8
    assert np.array_equal(arr, resize_for_model(decode_image(data).image, 64))


def test_jpeg_draft_keeps_original_size_and_is_close_to_full_decode(encoder: Encoder) -> None:
    data = encoder(_gradient(1600, 1200), "JPEG", quality=95)
    drafted = decode_image(data, draft_size=224)
    assert drafted.original_size == (1600, 1200)
    assert min(drafted.image.size) >= 224
    assert drafted.image.size[0] < 1600  # the reduced DCT scale was used
    full = resize_for_model(decode_image(data).image, 224).astype(int)
    assert np.abs(load_for_model(data, 224).astype(int) - full).mean() < 2.0


def test_load_for_model_rejects_bad_input() -> None:
    with pytest.raises(ImageError):
        load_for_model(b"\xff\xd8\xff\xe0garbage", 32)
