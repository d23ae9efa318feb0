"""Decode fast path (JPEG draft mode in ``imaging.load_for_model``) vs plain PIL, same photos.

    python -m benchmarks.decode_bench --images DIR --repeats 5   # DIR: real JPEG photos
    python -m benchmarks.decode_bench                              # the repository's synthetic photos

Plain PIL = what a first server does: open, ``convert("RGB")``, resize to the model size.
Both produce the model's uint8 [S,S,3]; the table also shows how far apart their pixels are.
Photos are measured as they are and re-encoded at phone size (1600 px long side), where
draft decoding is meant to pay off.
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.photos import resolve_photos
from imaging import load_for_model
from imaging.cli import ArgumentParser

SIZE = 224


def plain_pil(data: bytes, size: int = SIZE) -> np.ndarray:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))


def fast_path(data: bytes, size: int = SIZE) -> np.ndarray:
    return load_for_model(data, size)


def upscale(data: bytes, long_side: int = 1600) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    scale = long_side / max(image.size)
    big = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    big.save(out, "JPEG", quality=90)
    return out.getvalue()


def time_per_image(fn: Callable[[bytes], np.ndarray], blobs: list[bytes], repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for blob in blobs:
            fn(blob)
        runs.append((time.perf_counter() - start) / len(blobs))
    return statistics.median(runs) * 1000


def main() -> None:
    parser = ArgumentParser(
        prog="python -m benchmarks.decode_bench",
        description=__doc__.split("\n\n")[0],
        epilog="example:\n  python -m benchmarks.decode_bench --images path/to/jpegs --sample 100",
    )
    parser.add_argument(
        "--images",
        type=Path,
        default=None,
        help="folder of JPEG photos (default: synthetic, build/perf/photos)",
    )
    parser.add_argument("--sample", type=int, default=200, help="photos to use")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes; the median is reported")
    args = parser.parse_args()
    try:
        folder = resolve_photos(args.images, say=lambda text: print(text, file=sys.stderr))
    except FileNotFoundError as exc:
        parser.exit(2, f"error: {exc}\n")

    files = sorted(folder.rglob("*.jpg"))
    files = files[:: max(1, len(files) // args.sample)][: args.sample]
    sets = {"as stored": [p.read_bytes() for p in files]}
    sets["phone size (1600 px)"] = [upscale(b) for b in sets["as stored"]]

    print("| photos | plain PIL ms/img | fast path ms/img | speed-up | max abs pixel diff | mean abs diff |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, blobs in sets.items():
        plain = time_per_image(plain_pil, blobs, args.repeats)
        fast = time_per_image(fast_path, blobs, args.repeats)
        diffs = [np.abs(plain_pil(b).astype(int) - fast_path(b).astype(int)) for b in blobs[:50]]
        print(
            f"| {name} ({len(blobs)}) | {plain:.2f} | {fast:.2f} | {plain / fast:.2f}× "
            f"| {max(int(d.max()) for d in diffs)} | {np.mean([d.mean() for d in diffs]):.2f} |"
        )


if __name__ == "__main__":
    main()
