"""``python -m training.data {download,ingest,preprocess}``: raw data → manifest → training cache.

Also the import point for the data contract used by training:
:func:`load_manifest`, :func:`cache_path`, :func:`split_for`, :data:`MANIFEST_COLUMNS`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from contract.paths import CACHE_DIR, DOWNLOADS_DIR, MANIFEST, RAW_DIR, REJECTS
from imaging import DecodeLimits
from imaging.cli import ArgumentParser
from training.download import PETIMAGES_BYTES, PETIMAGES_URL, DownloadError, download, extract_zip
from training.ingest import INGEST_LIMITS, ingest, write_outputs
from training.manifest import (
    MANIFEST_COLUMNS,
    REJECT_COLUMNS,
    ManifestError,
    cache_path,
    load_manifest,
    split_for,
    write_table,
)
from training.preprocess import preprocess
from training.sources import SourceError, detect_source
from training.synthetic import generate_synthetic

__all__ = [
    "MANIFEST_COLUMNS",
    "REJECT_COLUMNS",
    "ManifestError",
    "cache_path",
    "load_manifest",
    "main",
    "split_for",
]

DEFAULT_DOWNLOADS = Path(DOWNLOADS_DIR)
DEFAULT_RAW = Path(RAW_DIR)
DEFAULT_MANIFEST = Path(MANIFEST)
DEFAULT_REJECTS = Path(REJECTS)
DEFAULT_CACHE = Path(CACHE_DIR)
# 1,000 per class: enough for the small CNN to pass 90 % validation accuracy in a few CPU minutes.
DEFAULT_SYNTHETIC_COUNT = 1000


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {value}")
    return value


def _add_download_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=PETIMAGES_URL, help="archive URL (default: Microsoft PetImages zip)")
    parser.add_argument(
        "--dest", type=Path, default=DEFAULT_DOWNLOADS, help="folder for the archive (default %(default)s)"
    )
    parser.add_argument(
        "--expected-bytes",
        type=int,
        default=None,
        help=f"exact archive size (default {PETIMAGES_BYTES:,} for the default URL, "
        "else the server's Content-Length)",
    )
    parser.add_argument(
        "--sha256", default=None, help="expected sha256 of the archive (hex); checked when given"
    )
    parser.add_argument(
        "--extract-to",
        type=Path,
        default=DEFAULT_RAW,
        help="folder to extract the zip into (default %(default)s)",
    )
    parser.add_argument("--no-extract", action="store_true", help="download and check only")


def _add_limit_args(parser: argparse.ArgumentParser, verb: str) -> None:
    # Ingest and preprocess must agree, or preprocess fails on images ingest accepted.
    parser.add_argument(
        "--max-pixels",
        type=_positive,
        default=INGEST_LIMITS.max_pixels,
        help=f"{verb} images with more pixels, checked before decoding (default %(default)s)",
    )
    parser.add_argument(
        "--max-bytes",
        type=_positive,
        default=INGEST_LIMITS.max_bytes,
        help=f"{verb} larger files (default %(default)s)",
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m training.data",
        description=__doc__.splitlines()[0],
        epilog="""examples:
  python -m training.data ingest --source synthetic       # offline: generated photos
  python -m training.data ingest --source path/to/photos  # a folder of cat/ and dog/
  python -m training.data preprocess --image-size 112
exit codes: 0 done, 1 the step failed (e.g. a download), 2 bad arguments or inputs, 130 interrupted.""",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    # Also accepted after the subcommand; SUPPRESS keeps a subcommand default from undoing it.
    common = ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, help="step to run")

    dl = sub.add_parser(
        "download",
        parents=[common],
        help="fetch and extract the Microsoft PetImages archive (resumable; exact size checked, "
        "sha256 too when --sha256 is given)",
    )
    _add_download_args(dl)

    ing = sub.add_parser(
        "ingest", parents=[common], help="validate, deduplicate and split a source into the manifest"
    )
    ing.add_argument(
        "--source",
        default="synthetic",
        help="`synthetic` (generated, offline), `download` (PetImages, fetched if missing) or a folder "
        "(PetImages Cat/+Dog/, cat/+dog/, Kaggle cat.1.jpg, Oxford-IIIT Pet images/); default %(default)s",
    )
    ing.add_argument(
        "--train-only",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="an extra labelled folder whose images only ever enter the train split (repeatable); "
        "e.g. small or re-encoded photos that must not be measured as if users sent them",
    )
    ing.add_argument(
        "--manifest", type=Path, default=DEFAULT_MANIFEST, help="manifest to write (.csv or .parquet)"
    )
    ing.add_argument(
        "--rejects", type=Path, default=DEFAULT_REJECTS, help="report of rejected files (path,reason,detail)"
    )
    ing.add_argument(
        "--min-size", type=_positive, default=32, help="reject images whose shorter side is below this (px)"
    )
    _add_limit_args(ing, "reject")
    ing.add_argument(
        "--synthetic-count",
        type=_positive,
        default=DEFAULT_SYNTHETIC_COUNT,
        help="synthetic images per class (default %(default)s)",
    )
    ing.add_argument("--synthetic-seed", type=int, default=0, help="seed of the synthetic generator")
    ing.add_argument(
        "--synthetic-dir",
        type=Path,
        default=DEFAULT_RAW / "synthetic",
        help="where synthetic images are written (default %(default)s)",
    )
    ing.add_argument("--workers", type=_positive, default=None, help="decoding processes (default: all CPUs)")
    _add_download_args(ing)  # used by --source download

    pre = sub.add_parser(
        "preprocess", parents=[common], help="decode + resize every manifest image into the training cache"
    )
    pre.add_argument(
        "--manifest", type=Path, default=DEFAULT_MANIFEST, help="manifest to read (default %(default)s)"
    )
    pre.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="cache root (default %(default)s)")
    pre.add_argument("--image-size", type=_positive, default=224, help="side S of the cached S×S arrays")
    pre.add_argument("--workers", type=_positive, default=None, help="processes (default: all CPUs)")
    _add_limit_args(pre, "skip")
    return parser


def _download(args: argparse.Namespace) -> Path:
    expected = args.expected_bytes
    if expected is None and args.url == PETIMAGES_URL:
        expected = PETIMAGES_BYTES
    archive = download(
        args.url, args.dest, expected_bytes=expected, sha256=args.sha256, progress=not args.quiet
    )
    checked = ([f"size {expected:,} bytes"] if expected is not None else []) + (
        ["sha256"] if args.sha256 else []
    )
    what = ", ".join(checked) or "nothing beyond a complete transfer (no expected size or sha256 given)"
    print(f"downloaded {archive} ({archive.stat().st_size:,} bytes); checked: {what}")
    if args.no_extract:
        return archive
    if archive.suffix.lower() != ".zip":
        raise DownloadError(f"{archive} is not a .zip archive; use --no-extract")
    extract_zip(archive, args.extract_to, progress=not args.quiet)
    print(f"extracted into {args.extract_to}")
    return args.extract_to


def _ingest(args: argparse.Namespace) -> int:
    if args.source == "synthetic":
        folder = generate_synthetic(
            args.synthetic_dir,
            args.synthetic_count,
            seed=args.synthetic_seed,
            workers=args.workers or os.cpu_count() or 1,
            progress=not args.quiet,
        )
        print(f"synthetic source: {args.synthetic_count} images per class in {folder}")
    elif args.source == "download":
        # The extraction marker, not a non-empty folder: data/raw also holds the synthetic set.
        if not any(args.extract_to.glob(".extracted-*")):
            args.no_extract = False
            _download(args)
        petimages = args.extract_to / "PetImages"
        folder = petimages if petimages.is_dir() else args.extract_to
    else:
        folder = Path(args.source)
    source = detect_source(folder)
    limits = DecodeLimits(max_bytes=args.max_bytes, max_pixels=args.max_pixels, min_side=1)
    result = ingest(
        source,
        train_only=[detect_source(extra) for extra in args.train_only],
        min_size=args.min_size,
        workers=args.workers,
        limits=limits,
        progress=not args.quiet,
    )
    missing = sorted({"cat", "dog"} - set(result.manifest["label"]))
    print(result.summary())
    if missing:
        # No manifest: a one-class (or empty) data set must stop the pipeline, with the reasons kept.
        write_table(result.rejects, args.rejects)
        print(
            f"error: no usable {' or '.join(missing)} images in {folder}; see {args.rejects}", file=sys.stderr
        )
        return 1
    write_outputs(result, args.manifest, args.rejects)
    print(
        f"wrote {args.manifest} ({len(result.manifest)} rows) and {args.rejects} ({len(result.rejects)} rows)"
    )
    return 0


def _preprocess(args: argparse.Namespace) -> int:
    limits = DecodeLimits(max_bytes=args.max_bytes, max_pixels=args.max_pixels, min_side=1)
    result = preprocess(
        args.manifest,
        args.cache_dir,
        args.image_size,
        workers=args.workers,
        limits=limits,
        progress=not args.quiet,
    )
    print(result.summary())
    print(f"cache: {args.cache_dir / str(args.image_size)}")
    return 1 if result.failures else 0


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "download":
            _download(args)
            return 0
        if args.command == "ingest":
            return _ingest(args)
        return _preprocess(args)
    except (SourceError, ManifestError) as exc:
        # A source or manifest that is not there or not usable: the user's to fix, like a bad flag.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
