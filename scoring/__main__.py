"""Score a folder or manifest of photos through Triton gRPC into CSV or Parquet.

    python -m scoring --input photos/ --output scores.csv
    python -m scoring --input manifest.csv --output scores.parquet --shard 3/8

Reruns resume: rows already written for the same (path, sha256) are skipped.
Exit codes: 0 all scored, 1 some files failed (see the errors file), 2 could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from tqdm import tqdm

from imaging import DecodeLimits
from scoring.inputs import ALL, Shard, list_inputs
from scoring.output import ErrorLog, open_writer
from scoring.pipeline import RunSummary, TritonUnavailableError, score_files
from scoring.triton_model import TritonModel


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scoring", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, type=Path, help="folder (recursive) or manifest CSV")
    parser.add_argument("--output", required=True, type=Path, help="results file: .csv or .parquet (folder)")
    parser.add_argument(
        "--errors", type=Path, help="per-file failures CSV (default: <output>.errors.csv beside the output)"
    )
    parser.add_argument(
        "--triton-url",
        default=os.environ.get("TRITON_GRPC_URL", "127.0.0.1:8001"),
        help="Triton gRPC host:port, several comma-separated, or a gRPC target such as "
        "dns:///triton-headless:8001; batches are spread over the servers (env TRITON_GRPC_URL)",
    )
    parser.add_argument(
        "--model", default=os.environ.get("MODEL_NAME", "cats_dogs"), help="Triton model name"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="images per Triton request")
    parser.add_argument("--in-flight", type=int, default=4, help="Triton requests outstanding at once")
    parser.add_argument(
        "--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1), help="decoding processes"
    )
    parser.add_argument(
        "--shard",
        type=Shard.parse,
        default=ALL,
        help="score only shard i of N, e.g. 0/4 (Kubernetes: $JOB_COMPLETION_INDEX/N)",
    )
    parser.add_argument(
        "--max-pixels", type=int, default=DecodeLimits().max_pixels, help="reject larger images"
    )
    parser.add_argument("--max-bytes", type=int, default=50 * 1024 * 1024, help="reject larger files")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per Triton request")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")
    return parser


def check_output(path: Path) -> None:
    """Refuse an unusable output before connecting to Triton or listing a large catalogue."""
    if path.suffix not in {".csv", ".parquet"}:
        raise ValueError(f"--output must end in .csv or .parquet, got {path.name}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {path.parent} (create it first)")


async def run(args: argparse.Namespace) -> RunSummary:
    check_output(args.output)
    paths = list_inputs(args.input, args.shard)
    model = TritonModel(args.triton_url, args.model, timeout_s=args.timeout)
    try:
        info = await model.connect()
        batch_size = min(args.batch_size, info.max_batch_size or args.batch_size)
        writer = open_writer(args.output, info.class_names)
        errors = ErrorLog(args.errors or args.output.with_name(args.output.name + ".errors.csv"))
        print(
            f"scoring {len(paths)} files (shard {args.shard.index}/{args.shard.count}) with "
            f"{info.name} v{info.version} at {args.triton_url}; batch {batch_size}, "
            f"{args.in_flight} in flight, {args.workers} decoders",
            file=sys.stderr,
        )
        with tqdm(total=len(paths), unit="img", disable=args.no_progress, smoothing=0.1) as bar:
            try:
                return await score_files(
                    paths,
                    model=model,
                    info=info,
                    writer=writer,
                    errors=errors,
                    batch_size=batch_size,
                    in_flight=args.in_flight,
                    workers=args.workers,
                    limits=DecodeLimits(max_bytes=args.max_bytes, max_pixels=args.max_pixels),
                    on_progress=bar.update,
                )
            finally:
                writer.close()
                errors.close()
    finally:
        await model.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or args.in_flight < 1 or args.workers < 1:
        print("error: --batch-size, --in-flight and --workers must be >= 1", file=sys.stderr)
        return 2
    try:
        summary = asyncio.run(run(args))
    except (FileNotFoundError, ValueError, ConnectionError, TritonUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rate = summary.scored / summary.seconds if summary.seconds else 0.0
    print(
        f"done: {summary.scored} scored, {summary.skipped} already done, {summary.failed} failed "
        f"of {summary.total} in {summary.seconds:.2f}s ({rate:.1f} img/s) → {args.output}",
        file=sys.stderr,
    )
    if summary.failed:
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(summary.failures.items()))
        print(f"failures ({kinds}) listed in the errors file", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
