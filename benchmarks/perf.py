"""``make perf``: concurrency sweeps against Triton (gRPC) and the gateway (HTTP multipart).

    python -m benchmarks.perf triton  --images DIR --concurrency 1,4,8,16 --out build/perf/triton.csv
    python -m benchmarks.perf gateway --images DIR --url http://127.0.0.1:8000 --out build/perf/gateway.csv

With ``perf_analyzer`` on PATH (NGC Triton SDK image) the Triton sweep runs perf_analyzer itself,
feeding it the same photos as uint8 tensors through ``--input-data``; otherwise (this machine: the
PyPI wheels need glibc 2.38) the project's generator runs the sweep and writes the same columns.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np
import tritonclient.grpc.aio as grpcclient

from benchmarks.loadgen import PERF_ANALYZER_COLUMNS, LevelResult, SendFn, require_loopback, sweep
from imaging import load_for_model
from imaging.cli import ArgumentParser
from scoring.triton_model import TritonModel

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}


def photo_files(folder: Path, limit: int) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no photos under {folder}")
    # An even spread over the sorted list keeps both classes (cat/…, dog/…) in a small sample.
    step = max(1, len(files) // limit)
    return files[::step][:limit]


async def triton_sender(args: argparse.Namespace) -> tuple[SendFn, int]:
    model = TritonModel(args.grpc_url, args.model)
    info = await model.connect()
    pixels = np.stack(
        [load_for_model(p.read_bytes(), info.image_size) for p in photo_files(args.images, args.sample)]
    )
    batches = [pixels[i : i + args.batch] for i in range(0, len(pixels) - args.batch + 1, args.batch)] or [
        pixels[: args.batch]
    ]
    client = grpcclient.InferenceServerClient(args.grpc_url)
    output = [grpcclient.InferRequestedOutput(info.output_name)]

    async def send(i: int) -> str:
        batch = batches[i % len(batches)]
        request = grpcclient.InferInput(info.input_name, list(batch.shape), "UINT8")
        request.set_data_from_numpy(batch)
        try:
            await client.infer(args.model, [request], outputs=output, client_timeout=args.timeout)
        except Exception as exc:
            return "rejected" if "exceeds maximum queue size" in str(exc) else "error"
        return "ok"

    return send, args.batch


async def gateway_sender(args: argparse.Namespace) -> tuple[SendFn, int]:
    bodies = [(p.name, p.read_bytes()) for p in photo_files(args.images, args.sample)]
    client = httpx.AsyncClient(
        base_url=args.url, timeout=args.timeout, limits=httpx.Limits(max_connections=max(args.concurrency))
    )

    async def send(i: int) -> str:
        name, data = bodies[i % len(bodies)]
        try:
            # The photos repeat; without the bypass the gateway's response cache would answer them.
            response = await client.post(
                "/predict", files={"file": (name, data, "image/jpeg")}, headers={"Cache-Control": "no-cache"}
            )
        except httpx.HTTPError:
            return "error"
        return "ok" if response.status_code == 200 else str(response.status_code)

    return send, 1


def run_perf_analyzer(args: argparse.Namespace, out: Path) -> None:
    """The real tool, where it exists: same photos, same levels, its own CSV per level, merged."""
    info = asyncio.run(TritonModel(args.grpc_url, args.model).connect())
    pixels = [load_for_model(p.read_bytes(), info.image_size) for p in photo_files(args.images, args.sample)]
    with tempfile.TemporaryDirectory() as tmp:
        data_file = Path(tmp) / "input.json"
        data_file.write_text(
            json.dumps(
                {
                    "data": [
                        {info.input_name: {"content": px.reshape(-1).tolist(), "shape": list(px.shape)}}
                        for px in pixels
                    ]
                }
            )
        )
        rows: list[dict[str, str]] = []
        for level in args.concurrency:
            level_csv = Path(tmp) / f"c{level}.csv"
            subprocess.run(
                [
                    "perf_analyzer", "-m", args.model, "-u", args.grpc_url, "-i", "grpc",
                    "-b", str(args.batch), "--concurrency-range", f"{level}:{level}",
                    "--input-data", str(data_file), "--measurement-mode", "count_windows",
                    "--measurement-request-count", str(min(args.max_requests, 500)),
                    "--percentile", "95", "-f", str(level_csv),
                ],
                check=True,
            )  # fmt: skip
            with level_csv.open() as fh:
                rows += list(csv.DictReader(fh))
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_results(results: Sequence[LevelResult], out: Path) -> None:
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=PERF_ANALYZER_COLUMNS)
        writer.writeheader()
        writer.writerows(r.perf_analyzer_row() for r in results)
    out.with_suffix(".json").write_text(json.dumps([r.as_dict() for r in results], indent=2))


def markdown_table(results: Sequence[LevelResult]) -> str:
    lines = [
        "| concurrency | img/s | p50 ms | p90 ms | p95 ms | p99 ms | server queue µs | server compute µs "
        "| avg batch | outcomes |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:

        def opt(v: float | None, fmt: str = "{:.0f}") -> str:
            return fmt.format(v) if v is not None else "–"

        lines.append(
            f"| {r.concurrency} | {r.infer_per_s:.1f} | {r.p50_us / 1e3:.1f} | {r.p90_us / 1e3:.1f} "
            f"| {r.p95_us / 1e3:.1f} | {r.p99_us / 1e3:.1f} | {opt(r.server_queue_us)} "
            f"| {opt(r.server_compute_infer_us)} | {opt(r.server_avg_batch, '{:.1f}')} | {r.status_counts} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m benchmarks.perf",
        description=__doc__.split("\n\n")[0],
        epilog="examples:\n"
        "  python -m benchmarks.perf triton --images path/to/photos --out build/perf/triton.csv\n"
        "  python -m benchmarks.perf gateway --images path/to/photos --out build/perf/gateway.csv",
    )
    parser.add_argument("target", choices=["triton", "gateway"], help="what to load")
    parser.add_argument("--images", type=Path, required=True, help="folder of photos (e.g. pets-dev)")
    parser.add_argument("--sample", type=int, default=64, help="distinct photos to cycle through")
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 4, 8, 16],
        help="comma-separated concurrency levels",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="max seconds per level")
    parser.add_argument("--max-requests", type=int, default=2000, help="max requests per level")
    parser.add_argument("--batch", type=int, default=1, help="images per Triton request")
    parser.add_argument("--grpc-url", default="127.0.0.1:8001", help="Triton gRPC host:port")
    parser.add_argument("--metrics-url", default="http://127.0.0.1:8002/metrics", help="Triton metrics URL")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="gateway base URL")
    parser.add_argument("--model", default="cats_dogs", help="Triton model name")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--out", type=Path, required=True, help="CSV in perf_analyzer's columns (+ .json)")
    parser.add_argument("--no-perf-analyzer", action="store_true", help="use the built-in generator")
    return parser


async def _sweep(args: argparse.Namespace) -> list[LevelResult]:
    send, images_per_request = await (
        triton_sender(args) if args.target == "triton" else gateway_sender(args)
    )
    return await sweep(
        send,
        args.concurrency,
        duration_s=args.duration,
        max_requests=args.max_requests,
        metrics_url=args.metrics_url,
        model=args.model,
        images_per_request=images_per_request,
        on_level=lambda r: print(
            f"c={r.concurrency}: {r.infer_per_s:.1f} img/s p99 {r.p99_us / 1e3:.1f} ms {r.status_counts}",
            file=sys.stderr,
        ),
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        for endpoint in (args.grpc_url, args.metrics_url, args.url):
            require_loopback(endpoint)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.target == "triton" and not args.no_perf_analyzer and shutil.which("perf_analyzer"):
        run_perf_analyzer(args, args.out)
        print(f"perf_analyzer results → {args.out}")
        return 0
    try:
        results = asyncio.run(_sweep(args))
    except (ConnectionError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_results(results, args.out)
    print(markdown_table(results))
    print(f"\n→ {args.out} (perf_analyzer columns) and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
