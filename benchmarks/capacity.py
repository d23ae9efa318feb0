"""Gateway decode cost per core, for the capacity model in docs/ARCHITECTURE.md.

    python -m benchmarks.capacity --images DIR --sample 100     # DIR: a folder of real photos

CPU seconds (``time.process_time``, one thread) per upload through the gateway's own decode path
(``imaging.load_for_model``: JPEG draft mode + resize to the model size), for the photos as they
are and re-encoded at phone size (1600 px long side). CPU time, not wall time: on a shared,
busy machine it still says what one core costs per image.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from benchmarks.decode_bench import upscale
from imaging import load_for_model


def cpu_ms_per_image(photos: list[bytes], size: int, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        started = time.process_time()
        for data in photos:
            load_for_model(data, size)
        runs.append((time.process_time() - started) * 1000 / len(photos))
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.capacity", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--images", type=Path, required=True, help="folder of JPEG photos (recursive)")
    parser.add_argument("--sample", type=int, default=100, help="photos to use")
    parser.add_argument("--repeats", type=int, default=3, help="passes; the median is reported")
    parser.add_argument("--sizes", default="112,224", help="model input sizes to decode to, comma-separated")
    args = parser.parse_args(argv)
    files = sorted(args.images.rglob("*.jpg"))[: args.sample]
    if not files:
        print(f"error: no .jpg under {args.images}", file=sys.stderr)
        return 2
    as_is = [f.read_bytes() for f in files]
    phone = [upscale(data) for data in as_is]
    print("| photos | model size | CPU ms / image | images / s per core |")
    print("|---|---:|---:|---:|")
    for label, photos in (("as they are", as_is), ("phone size, 1600 px", phone)):
        for size in (int(s) for s in args.sizes.split(",")):
            ms = cpu_ms_per_image(photos, size, args.repeats)
            print(f"| {label} | {size} | {ms:.2f} | {1000 / ms:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
