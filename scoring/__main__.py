"""Score a folder or manifest of photos through Triton gRPC into CSV or Parquet.

examples:
  python -m scoring --input photos/ --output scores.csv
  python -m scoring --input manifest.csv --output scores.parquet --shard 3/8

Reruns resume: rows already written for the same (path, sha256) are skipped, so an interrupted
run (Ctrl-C, a lost node) continues where it stopped when the same command is run again.
Exit codes: 0 all scored, 1 some files failed (see the errors file), 2 could not run,
130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

from contract.model import MODEL_NAME
from imaging import DecodeLimits
from imaging.cli import ArgumentParser
from scoring.inputs import Shard, list_inputs
from scoring.output import ErrorLog, open_writer
from scoring.pipeline import RunSummary, TritonUnavailableError, score_files
from scoring.triton_model import TritonModel


def build_parser() -> argparse.ArgumentParser:
    description, _, epilog = __doc__.partition("\n\n")
    parser = ArgumentParser(prog="python -m scoring", description=description, epilog=epilog)
    parser.add_argument(
        "--input",
        required=True,
        type=Path,
        help="folder of photos (recursive), or a manifest (.csv or .parquet) with a 'path' column",
    )
    parser.add_argument("--output", required=True, type=Path, help="results file: .csv or .parquet (folder)")
    parser.add_argument(
        "--errors",
        type=Path,
        help="per-file failures CSV, written only when a file fails (default: <output>.errors.csv)",
    )
    parser.add_argument(
        "--triton-url",
        default=os.environ.get("TRITON_GRPC_URL", "127.0.0.1:8001"),
        help="Triton gRPC host:port, several comma-separated, or a gRPC target such as "
        "dns:///triton-headless:8001; batches are spread over the servers (env TRITON_GRPC_URL)",
    )
    parser.add_argument("--model", default=os.environ.get("MODEL_NAME", MODEL_NAME), help="Triton model name")
    parser.add_argument("--batch-size", type=int, default=32, help="images per Triton request")
    parser.add_argument("--in-flight", type=int, default=4, help="Triton requests outstanding at once")
    parser.add_argument(
        "--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1), help="decoding processes"
    )
    parser.add_argument(
        "--shard",
        type=_shard,
        default="0/1",
        help="score only shard i of N, e.g. 0/4 (Kubernetes: $JOB_COMPLETION_INDEX/N)",
    )
    parser.add_argument(
        "--max-pixels", type=int, default=DecodeLimits().max_pixels, help="reject larger images"
    )
    parser.add_argument("--max-bytes", type=int, default=50 * 1024 * 1024, help="reject larger files")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per Triton request")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")
    return parser


def _shard(text: str) -> Shard:
    # argparse shows an ArgumentTypeError's own text; a ValueError would become "invalid value".
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def check_output(path: Path) -> None:
    """Refuse an unusable output before connecting to Triton or listing a large catalogue."""
    if path.suffix not in {".csv", ".parquet"}:
        raise ValueError(f"--output must end in .csv or .parquet, got {path.name}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {path.parent} (create it first)")
    # A real write, not os.access: root passes access() on folders it cannot write (/sys, read-only).
    try:
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        raise PermissionError(
            f"cannot write to {path.parent}: {exc.strerror or exc} (choose another --output)"
        ) from exc


def errors_path(args: argparse.Namespace) -> Path:
    return Path(args.errors or args.output.with_name(args.output.name + ".errors.csv"))


async def run(args: argparse.Namespace) -> RunSummary:
    check_output(args.output)
    paths = list_inputs(args.input, args.shard)
    model = TritonModel(args.triton_url, args.model, timeout_s=args.timeout)
    try:
        info = await model.connect()
        batch_size = min(args.batch_size, info.max_batch_size)
        writer = open_writer(args.output, info.class_names)
        errors = ErrorLog(errors_path(args))
        print(
            f"scoring {len(paths)} files (shard {args.shard.index}/{args.shard.count}) with "
            f"{info.name} v{info.version} (MLflow model version {info.mlflow_version or 'unknown'}) "
            f"at {args.triton_url}; batch {batch_size}, "
            f"{args.in_flight} in flight, {args.workers} decoders",
            file=sys.stderr,
        )

        def progress(n: int) -> None:
            bar.update(n)
            args.processed += n

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
                    on_progress=progress,
                )
            finally:
                writer.close()
                errors.close()
    finally:
        await model.close()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.in_flight < 1 or args.workers < 1:
        print(f"{parser.prog}: error: --batch-size, --in-flight and --workers must be >= 1", file=sys.stderr)
        return 2
    args.processed = 0
    try:
        summary = asyncio.run(run(args))
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: {args.processed} files processed this run, their rows are saved in "
            f"{args.output}; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    except (ValueError, ConnectionError, TritonUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # PermissionError, FileNotFoundError, a full disk…: one line, never a traceback.
        where = f": {exc.filename}" if exc.filename and str(exc.filename) not in str(exc) else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    rate = summary.scored / summary.seconds if summary.seconds else 0.0
    print(
        f"done: {summary.scored} scored, {summary.skipped} already done, {summary.failed} failed "
        f"of {summary.total} in {summary.seconds:.2f}s ({rate:.1f} img/s) → {args.output}",
        file=sys.stderr,
    )
    if summary.failed:
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(summary.failures.items()))
        print(f"failures ({kinds}) listed in the errors file {errors_path(args)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
