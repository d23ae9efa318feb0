"""A deterministic, labelled stand-in for pet photos: the offline default and the test data.

The class lives in *structure*, not in colour: a "cat" is a round head with pointy triangular
ears and whiskers, a "dog" is a round head with long floppy ears hanging at its sides. Every
colour (background gradient, head, ears, distractors), position, scale, rotation, canvas size,
image mode and file format is drawn from the same distribution for both classes, so neither a
single pixel nor the mean colour says which class an image is; a small CNN learns the shapes
within a few epochs even at 64×64.

Each image is generated from its own seed ``(seed, class, index)``, so the set is reproducible
byte for byte and growing ``n_per_class`` only appends files.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from imaging.cli import ArgumentParser
from training.parallel import parallel_map

CLASSES: tuple[str, ...] = ("cat", "dog")

# (format, mode, extension, weight). Modes are those each format can store; JPEG and PNG dominate
# as in real photo collections, the rest keep the decoder's other paths exercised.
_ENCODINGS: tuple[tuple[str, str, str, float], ...] = (
    ("JPEG", "RGB", "jpg", 0.40),
    ("JPEG", "L", "jpg", 0.05),
    ("PNG", "RGB", "png", 0.15),
    ("PNG", "RGBA", "png", 0.08),
    ("PNG", "P", "png", 0.05),
    ("PNG", "L", "png", 0.03),
    ("WEBP", "RGB", "webp", 0.10),
    ("WEBP", "RGBA", "webp", 0.04),
    ("BMP", "RGB", "bmp", 0.05),
    ("GIF", "P", "gif", 0.05),
)
_ENC_WEIGHTS = np.array([w for *_, w in _ENCODINGS]) / sum(w for *_, w in _ENCODINGS)


@dataclass(frozen=True)
class SyntheticImage:
    label: str
    index: int
    image: Image.Image  # already in its storage mode
    format: str
    extension: str


def _rng(seed: int, label: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, CLASSES.index(label), index])


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.integers(0, 256, size=3))
    return (r, g, b)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Linear gradient between two random colours in a random direction, plus pixel noise."""
    c0 = rng.integers(0, 256, size=3).astype(np.float32)
    c1 = rng.integers(0, 256, size=3).astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    t = xs / max(width - 1, 1) * math.cos(angle) + ys / max(height - 1, 1) * math.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0 + (c1 - c0) * t[..., None]
    img += rng.normal(0, rng.uniform(2, 18), size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _transform(
    points: list[tuple[float, float]], cx: float, cy: float, scale: float, rot: float
) -> list[tuple[float, float]]:
    """Face-local coordinates (head radius 1, y down) → canvas coordinates."""
    cos, sin = math.cos(rot), math.sin(rot)
    return [(cx + scale * (x * cos - y * sin), cy + scale * (x * sin + y * cos)) for x, y in points]


def _ellipse(
    cx: float, cy: float, rx: float, ry: float, tilt: float, n: int = 24
) -> list[tuple[float, float]]:
    cos, sin = math.cos(tilt), math.sin(tilt)
    pts = []
    for k in range(n):
        a = 2 * math.pi * k / n
        x, y = rx * math.cos(a), ry * math.sin(a)
        pts.append((cx + x * cos - y * sin, cy + x * sin + y * cos))
    return pts


def _distractors(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int, height: int) -> None:
    """Blobs and strokes shared by both classes, so "has lines" or "has a blob" is no shortcut."""
    for _ in range(int(rng.integers(0, 4))):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.03, 0.10) * min(width, height)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_colour(rng))
    for _ in range(int(rng.integers(0, 4))):
        x0, y0, x1, y1 = rng.uniform(0, 1, size=4) * np.array([width, height, width, height])
        draw.line((x0, y0, x1, y1), fill=_colour(rng), width=int(rng.integers(1, 3)))


def _draw_face(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, label: str, width: int, height: int
) -> None:
    side = min(width, height)
    scale = rng.uniform(0.20, 0.28) * side  # head radius in pixels
    margin = 2.0 * scale  # ears reach ~1.9 radii from the centre
    cx = rng.uniform(margin, max(width - margin, margin + 1))
    cy = rng.uniform(margin, max(height - margin, margin + 1))
    rot = rng.uniform(-0.3, 0.3)
    head_colour = _colour(rng)
    ear_colour = head_colour if rng.random() < 0.3 else _colour(rng)
    mark_colour = _colour(rng)

    def poly(points: list[tuple[float, float]], fill: tuple[int, int, int]) -> None:
        draw.polygon(_transform(points, cx, cy, scale, rot), fill=fill)

    # Ears first so the head overlaps their roots. Areas are similar (~0.5 r² each) so the
    # amount of ear colour does not differ between classes either.
    if label == "cat":
        for side_sign in (-1, 1):
            spread = rng.uniform(0.45, 0.75)  # angle of the ear root from vertical
            half_base = rng.uniform(0.30, 0.42)
            length = rng.uniform(0.85, 1.05)
            a = side_sign * spread
            bx, by = math.sin(a), -math.cos(a)  # root on the head outline
            tx, ty = -by, bx  # tangent
            apex = (bx * (1 + length), by * (1 + length))
            poly(
                [
                    (bx * 0.8 + tx * half_base, by * 0.8 + ty * half_base),
                    apex,
                    (bx * 0.8 - tx * half_base, by * 0.8 - ty * half_base),
                ],
                ear_colour,
            )
    else:
        for side_sign in (-1, 1):
            root_x = side_sign * rng.uniform(0.75, 0.95)
            root_y = -rng.uniform(0.2, 0.5)
            length = rng.uniform(0.55, 0.7)  # semi-axis along the ear
            breadth = rng.uniform(0.22, 0.30)
            tilt = side_sign * rng.uniform(-0.15, 0.30)
            # Hangs down from the root: centre one semi-axis below it, rotated slightly outward.
            ecx = root_x - math.sin(tilt) * length
            ecy = root_y + math.cos(tilt) * length
            poly(_ellipse(ecx, ecy, breadth, length, tilt), ear_colour)

    poly(_ellipse(0, 0, 1.0, rng.uniform(0.85, 1.0), 0.0, n=32), head_colour)

    # Coat markings: tabby stripes on cats, round patches on dogs, in the same colour
    # distribution and of similar area; a texture cue that survives downscaling to 64 px.
    if label == "cat":
        stroke = max(1, round(scale * 0.09))
        for k in (-1, 0, 1):
            x = k * 0.22
            stripe = [(x + 0.04 * k, -0.9), (x, -0.65), (x + 0.03 * k, -0.4)]
            draw.line(_transform(stripe, cx, cy, scale, rot), fill=mark_colour, width=stroke)
        for sx in (-1, 1):
            for y in (0.1, 0.3):
                cheek = [(sx * 0.95, y), (sx * 0.62, y + 0.05)]
                draw.line(_transform(cheek, cx, cy, scale, rot), fill=mark_colour, width=stroke)
    else:
        for _ in range(int(rng.integers(2, 4))):
            a = rng.uniform(0, 2 * math.pi)
            d = rng.uniform(0.45, 0.7)
            r = rng.uniform(0.16, 0.22)
            poly(_ellipse(d * math.cos(a), d * math.sin(a) * 0.9, r, r * 0.8, a, n=14), mark_colour)

    # Eyes and nose: identical for both classes.
    eye_colour = _colour(rng)
    eye_r = rng.uniform(0.10, 0.16)
    for sx in (-1, 1):
        poly(_ellipse(sx * 0.38, -0.15, eye_r, eye_r, 0.0, n=12), eye_colour)
    nose_colour = _colour(rng)
    poly(_ellipse(0, 0.3, 0.12, 0.09, 0.0, n=12), nose_colour)

    if label == "cat":
        # Whiskers: three strokes fanning out on each side of the nose.
        stroke = max(1, round(scale * 0.05))
        for sx in (-1, 1):
            for k in (-1, 0, 1):
                end_y = 0.3 + k * rng.uniform(0.12, 0.22)
                line = _transform(
                    [(sx * 0.2, 0.35), (sx * rng.uniform(1.05, 1.3), end_y)], cx, cy, scale, rot
                )
                draw.line(line, fill=nose_colour, width=stroke)
    else:
        # A mouth arc of similar ink so "more dark strokes" is not the cue on its own.
        stroke = max(1, round(scale * 0.06))
        mouth = [(x, 0.5 + 0.15 * (1 - (x / 0.35) ** 2)) for x in np.linspace(-0.35, 0.35, 7)]
        draw.line(_transform(mouth, cx, cy, scale, rot), fill=nose_colour, width=stroke)


def make_image(
    label: str, index: int, *, seed: int = 0, size_range: tuple[int, int] = (64, 320)
) -> SyntheticImage:
    """Generate image ``index`` of ``label``; the same arguments always give the same image."""
    if label not in CLASSES:
        raise ValueError(f"unknown label {label!r}; expected one of {', '.join(CLASSES)}")
    rng = _rng(seed, label, index)
    lo, hi = size_range
    width = int(rng.integers(lo, hi + 1))
    aspect = rng.uniform(0.75, 1.33)
    height = int(np.clip(round(width * aspect), lo, hi))
    canvas = Image.fromarray(_background(rng, width, height), "RGB")
    draw = ImageDraw.Draw(canvas)
    _distractors(draw, rng, width, height)
    _draw_face(draw, rng, label, width, height)
    if rng.random() < 0.5:
        canvas = canvas.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    fmt, mode, ext, _ = _ENCODINGS[int(rng.choice(len(_ENCODINGS), p=_ENC_WEIGHTS))]
    if mode == "RGBA":
        # Partial transparency only: the decoder composites over white, and a fully
        # transparent image would carry no label.
        alpha = np.full((height, width), int(rng.integers(180, 256)), dtype=np.uint8)
        image = canvas.convert("RGBA")
        image.putalpha(Image.fromarray(alpha, "L"))
    elif mode == "P":
        image = canvas.quantize(colors=int(rng.integers(64, 257)), method=Image.Quantize.FASTOCTREE)
    else:
        image = canvas.convert(mode)
    return SyntheticImage(label, index, image, fmt, ext)


def _save(item: SyntheticImage, path: Path) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    options: dict[str, object] = {}
    if item.format == "JPEG":
        options = {"quality": 90}
    elif item.format == "WEBP":
        options = {"quality": 90, "method": 4}
    item.image.save(tmp, format=item.format, **options)
    tmp.replace(path)


# Bump when the drawing code changes, so an existing folder is regenerated rather than mixed.
GENERATOR_VERSION = 1
_PARAMS_FILE = ".synthetic.json"
_NAME = re.compile(r"^(cat|dog)_(\d{5,})\.[a-z]+$")


def _generate_one(task: tuple[Path, str, int, int, tuple[int, int]]) -> None:
    class_dir, label, index, seed, size_range = task
    item = make_image(label, index, seed=seed, size_range=size_range)
    _save(item, class_dir / f"{label}_{index:05d}.{item.extension}")


def generate_synthetic(
    out_dir: Path,
    n_per_class: int,
    *,
    seed: int = 0,
    size_range: tuple[int, int] = (64, 320),
    workers: int = 1,
    progress: bool = False,
) -> Path:
    """Make ``out_dir/{cat,dog}/`` hold exactly images ``0..n_per_class-1`` of this generator.

    Generation is deterministic, so files already there (from the same seed and size range,
    recorded in ``.synthetic.json``) are kept and only missing ones are drawn; generated files
    beyond ``n_per_class``, or from other parameters, are removed so ingest sees exactly this set.
    """
    if n_per_class < 1:
        raise ValueError("n_per_class must be at least 1")
    if not 16 <= size_range[0] <= size_range[1]:
        raise ValueError(f"size_range must satisfy 16 <= min <= max, got {size_range}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {"version": GENERATOR_VERSION, "seed": seed, "size_range": list(size_range)}
    params_file = out_dir / _PARAMS_FILE
    same_params = params_file.is_file() and json.loads(params_file.read_text()) == params
    params_file.unlink(missing_ok=True)  # rewritten only once the folder is complete

    tasks: list[tuple[Path, str, int, int, tuple[int, int]]] = []
    for label in CLASSES:
        class_dir = out_dir / label
        class_dir.mkdir(exist_ok=True)
        present: set[int] = set()
        for path in class_dir.iterdir():
            match = _NAME.match(path.name)
            if path.name.endswith(".tmp") or (
                match and (not same_params or int(match.group(2)) >= n_per_class)
            ):
                path.unlink()
            elif match:
                present.add(int(match.group(2)))
        tasks.extend((class_dir, label, i, seed, size_range) for i in range(n_per_class) if i not in present)
    for _ in parallel_map(_generate_one, tasks, workers=workers, desc="synthetic", progress=progress):
        pass
    params_file.write_text(json.dumps(params))
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m training.synthetic",
        description="Generate the synthetic cats-vs-dogs image set.",
        epilog="""examples:
  python -m training.synthetic data/synthetic
  python -m training.synthetic build/tiny --n-per-class 20 --max-size 128""",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write cat/ and dog/ into")
    parser.add_argument("--n-per-class", type=int, default=200, help="images per class (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--min-size", type=int, default=64, help="smallest canvas side in pixels")
    parser.add_argument("--max-size", type=int, default=320, help="largest canvas side in pixels")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all CPUs)"
    )
    args = parser.parse_args(argv)
    generate_synthetic(
        args.out_dir,
        args.n_per_class,
        seed=args.seed,
        size_range=(args.min_size, args.max_size),
        workers=args.workers,
        progress=True,
    )
    print(f"wrote {args.n_per_class} images per class to {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
