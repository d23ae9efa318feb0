"""``make perf``: concurrency sweeps against Triton (gRPC) and the gateway (HTTP multipart).

    python -m benchmarks.perf triton  --concurrency 1,4,8,16 --out build/perf/triton.csv
    python -m benchmarks.perf gateway --url http://127.0.0.1:8000 --out build/perf/gateway.csv

``triton`` runs NVIDIA's perf_analyzer (from the Debian trixie root filesystem benchmarks/perf_root.py
builds and caches) and, as a cross-check, the project's own generator (benchmarks/loadgen.py) at the
same levels with the same photos, interleaved level by level, and reports both tools' img/s side by
side. The photos are sent as uint8 tensors at the size Triton's model metadata declares, through
perf_analyzer's ``--input-data`` JSON. Without ``--images`` both targets use synthetic photos the
repository generates (benchmarks/photos.py).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import json
import mimetypes
import os
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import tritonclient.grpc.aio as grpcclient

from benchmarks.loadgen import (
    PERF_ANALYZER_COLUMNS,
    LevelResult,
    SendFn,
    require_loopback,
    run_level,
    sweep,
)
from benchmarks.perf_root import WORK_MOUNT, PerfRootError, ensure_root, run_perf_analyzer
from benchmarks.photos import resolve_photos
from contract.model_info import ModelInfo
from imaging import load_for_model
from imaging.cli import ArgumentParser
from scoring.triton_model import TritonModel
from serving.gateway_process import GatewayOptions
from serving.triton import TritonOptions

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}
# The two tools measure the same thing; a wider gap than this is reported (and explained in the docs).
AGREEMENT = 0.10


def photo_files(folder: Path, limit: int) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no photos under {folder}")
    # An even spread over the sorted list keeps both classes (cat/…, dog/…) in a small sample.
    step = max(1, len(files) // limit)
    return files[::step][:limit]


async def served_model(args: argparse.Namespace) -> ModelInfo:
    """Input name and size as Triton declares them: nothing about the model is written down here."""
    model = TritonModel(args.grpc_url, args.model)
    try:
        return await model.connect()
    finally:
        await model.close()


def model_pixels(args: argparse.Namespace, info: ModelInfo) -> np.ndarray:
    return np.stack(
        [load_for_model(p.read_bytes(), info.image_size) for p in photo_files(args.images, args.sample)]
    )


def triton_send_fn(args: argparse.Namespace, info: ModelInfo, pixels: np.ndarray) -> SendFn:
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

    return send


async def triton_sender(args: argparse.Namespace) -> tuple[SendFn, int]:
    info = await served_model(args)
    return triton_send_fn(args, info, model_pixels(args, info)), args.batch


async def gateway_sender(args: argparse.Namespace) -> tuple[SendFn, int]:
    # The declared type follows the file (synthetic sets mix JPEG, PNG, WebP, BMP and GIF).
    bodies = [
        (p.name, p.read_bytes(), mimetypes.guess_type(p.name)[0] or "application/octet-stream")
        for p in photo_files(args.images, args.sample)
    ]
    client = httpx.AsyncClient(
        base_url=args.url, timeout=args.timeout, limits=httpx.Limits(max_connections=max(args.concurrency))
    )

    async def send(i: int) -> str:
        name, data, content_type = bodies[i % len(bodies)]
        try:
            # The photos repeat; without the bypass the gateway's response cache would answer them.
            response = await client.post(
                "/predict", files={"file": (name, data, content_type)}, headers={"Cache-Control": "no-cache"}
            )
        except httpx.HTTPError:
            return "error"
        return "ok" if response.status_code == 200 else str(response.status_code)

    return send, 1


def perf_analyzer_input(info: ModelInfo, pixels: np.ndarray) -> dict[str, Any]:
    """perf_analyzer's ``--input-data`` JSON: one step per photo, raw uint8 bytes as base64.

    perf_analyzer sends the steps in order and wraps around, as the Python generator does.
    A batching model's shape leaves the batch dimension out (``-b`` sets it).
    """
    shape = list(pixels.shape[1:]) if info.batching else [1, *pixels.shape[1:]]
    return {
        "data": [
            {info.input_name: {"b64": base64.b64encode(px.tobytes()).decode("ascii"), "shape": shape}}
            for px in pixels
        ]
    }


# perf_analyzer judges stability over its last 3 windows and reports their mean. With the threshold
# at 9999 % the first 3 normally pass; a loaded machine can still fail a c=1 level on 3 (seen in CI),
# so it may take up to MAX_WINDOWS before giving up.
PERF_ANALYZER_WINDOWS = 3
MAX_WINDOWS = 10


def perf_analyzer_args(args: argparse.Namespace, level: int, data_name: str, csv_name: str) -> list[str]:
    """One concurrency level measured over time windows, CSV via ``-f``.

    Not ``--request-count``: in that mode perf_analyzer divides by whole seconds (measured here:
    60 requests in ~1.4 s read as 59.9 img/s one time and 29.8 the next), so a short level reads
    low by up to a factor of two. Stability is left to the medians of interleaved runs (a
    threshold of 9999 %, as Triton's own CI uses), not to perf_analyzer's retry loop.
    """
    return [
        "-m", args.model, "-u", args.grpc_url, "-i", "grpc", "-b", str(args.batch),
        "--concurrency-range", f"{level}:{level}",
        "--input-data", f"{WORK_MOUNT}/{data_name}",
        "--measurement-mode", "time_windows", "--measurement-interval", str(args.window_ms),
        "--max-trials", str(MAX_WINDOWS), "--stability-percentage", "9999",
        "--warmup-request-count", str(args.warmup),
        "--percentile", "99",
        "-f", f"{WORK_MOUNT}/{csv_name}",
    ]  # fmt: skip


def read_perf_analyzer_csv(path: Path) -> list[dict[str, str]]:
    """perf_analyzer's ``-f`` CSV: one row per concurrency level (its own column names)."""
    with path.open(newline="") as fh:
        rows = [row for row in csv.DictReader(fh) if row.get("Concurrency")]
    if not rows or "Inferences/Second" not in rows[0]:
        raise ValueError(f"{path}: not a perf_analyzer CSV (no Concurrency / Inferences/Second rows)")
    return rows


@dataclass
class Pair:
    """Both tools at one concurrency level: one value per run."""

    concurrency: int
    perf_analyzer_img_s: list[float] = field(default_factory=list)
    loadgen_img_s: list[float] = field(default_factory=list)
    perf_analyzer_p50_ms: list[float] = field(default_factory=list)
    perf_analyzer_p99_ms: list[float] = field(default_factory=list)
    loadgen_p50_ms: list[float] = field(default_factory=list)
    loadgen_p99_ms: list[float] = field(default_factory=list)
    # Client CPU per request (warm-up included): on a small machine the client competes with Triton.
    perf_analyzer_cpu_ms: list[float] = field(default_factory=list)
    loadgen_cpu_ms: list[float] = field(default_factory=list)
    perf_analyzer_failures: list[str] = field(default_factory=list)

    def median(self, name: str) -> float:
        values: list[float] = getattr(self, name)
        return statistics.median(values) if values else float("nan")

    @property
    def ratio(self) -> float:
        """Generator / perf_analyzer img/s (medians): 1.0 = the tools agree."""
        return self.median("loadgen_img_s") / self.median("perf_analyzer_img_s")

    @property
    def agrees(self) -> bool:
        return abs(self.ratio - 1.0) <= AGREEMENT

    def as_dict(self) -> dict[str, Any]:
        ratio = self.ratio
        return {**asdict(self), "ratio": None if ratio != ratio else ratio, "agrees": self.agrees}


def compare_table(pairs: Sequence[Pair]) -> str:
    lines = [
        "| concurrency | perf_analyzer img/s | loadgen img/s | loadgen / perf_analyzer "
        "| perf_analyzer p50 / p99 ms | loadgen p50 / p99 ms "
        "| client CPU ms/request (perf_analyzer / loadgen) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in pairs:
        lines.append(
            f"| {p.concurrency} | {p.median('perf_analyzer_img_s'):.1f}"
            f"{f' ({len(p.perf_analyzer_failures)} run(s) failed)' if p.perf_analyzer_failures else ''} "
            f"| {p.median('loadgen_img_s'):.1f} "
            f"| {p.ratio:.2f}{'' if p.agrees else ' ⚠'} "
            f"| {p.median('perf_analyzer_p50_ms'):.1f} / {p.median('perf_analyzer_p99_ms'):.1f} "
            f"| {p.median('loadgen_p50_ms'):.1f} / {p.median('loadgen_p99_ms'):.1f} "
            f"| {p.median('perf_analyzer_cpu_ms'):.2f} / {p.median('loadgen_cpu_ms'):.2f} |"
        )
    return "\n".join(lines)


def compare_chart(pairs: Sequence[Pair], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [p.concurrency for p in pairs]
    fig, (ax_rate, ax_p99) = plt.subplots(1, 2, figsize=(10, 4))
    for label, key, p99, marker in (
        ("perf_analyzer", "perf_analyzer_img_s", "perf_analyzer_p99_ms", "o"),
        ("loadgen (Python)", "loadgen_img_s", "loadgen_p99_ms", "s"),
    ):
        (line,) = ax_rate.plot(levels, [p.median(key) for p in pairs], marker=marker, label=label)
        for p in pairs:  # every run, so the spread behind each median shows
            runs = getattr(p, key)
            ax_rate.scatter(
                [p.concurrency] * len(runs), runs, marker=marker, color=line.get_color(), alpha=0.3
            )
        ax_p99.plot(
            levels, [p.median(p99) for p in pairs], marker=marker, label=label, color=line.get_color()
        )
    ax_rate.set(xlabel="concurrency", ylabel="img/s (median of runs)", title="Triton direct throughput")
    ax_p99.set(xlabel="concurrency", ylabel="p99 latency (ms)", title="p99 latency")
    for ax in (ax_rate, ax_p99):
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def outputs(out: Path) -> dict[str, Path]:
    """Everything ``triton`` writes, named after ``--out``."""
    return {
        "perf_analyzer": out,  # its -f CSVs, all levels and runs
        "perf_analyzer_dir": out.with_name(
            f"{out.stem}-perf_analyzer"
        ),  # input JSON + each -f CSV as written
        "loadgen": out.with_name(f"{out.stem}-loadgen.csv"),
        "compare_md": out.with_name(f"{out.stem}-compare.md"),
        "compare_json": out.with_name(f"{out.stem}-compare.json"),
        "chart": out.with_suffix(".png"),
    }


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _say(text: str) -> None:
    print(text, file=sys.stderr)


async def _perf_analyzer_level(
    args: argparse.Namespace, root: Path, work: Path, pair: Pair, run: int, rows: list[dict[str, str]]
) -> None:
    name = f"c{pair.concurrency}-run{run}.csv"
    cpu = _children_cpu_s()
    try:
        await asyncio.to_thread(
            run_perf_analyzer, root, work, perf_analyzer_args(args, pair.concurrency, "input.json", name),
            timeout_s=args.perf_analyzer_timeout, quiet=True,
        )  # fmt: skip
    except PerfRootError as exc:
        if not rows:  # nothing has worked yet: a setup problem, not a load level
            raise
        # perf_analyzer stops at the first failed request (e.g. an overloaded server's queue-timeout
        # rejection); the other levels still say something, so this one is recorded as failed.
        pair.perf_analyzer_failures.append(f"run {run}: {exc}")
        _say(f"run {run} c={pair.concurrency}: {exc}")
        return
    row = read_perf_analyzer_csv(work / name)[0]
    # Estimated (the CSV has no request count): at least the 3 windows reported were sent.
    sent = float(row["Inferences/Second"]) / args.batch * PERF_ANALYZER_WINDOWS * args.window_ms / 1e3
    pair.perf_analyzer_cpu_ms.append((_children_cpu_s() - cpu) * 1e3 / (sent + args.warmup))
    rows.append({"Run": str(run), **row})
    pair.perf_analyzer_img_s.append(float(row["Inferences/Second"]))
    pair.perf_analyzer_p50_ms.append(float(row["p50 latency"]) / 1e3)
    pair.perf_analyzer_p99_ms.append(float(row["p99 latency"]) / 1e3)
    _say(f"run {run} c={pair.concurrency}: perf_analyzer {pair.perf_analyzer_img_s[-1]:.1f} img/s")


async def _loadgen_level(
    args: argparse.Namespace, send: SendFn, pair: Pair, run: int, rows: list[LevelResult]
) -> None:
    cpu = time.process_time()
    result = await run_level(
        send, pair.concurrency, duration_s=args.duration, max_requests=args.max_requests,
        warmup_requests=args.warmup, metrics_url=args.metrics_url, model=args.model,
        images_per_request=args.batch,
    )  # fmt: skip
    pair.loadgen_cpu_ms.append((time.process_time() - cpu) * 1e3 / (result.requests + args.warmup))
    rows.append(result)
    pair.loadgen_img_s.append(result.infer_per_s)
    pair.loadgen_p50_ms.append(result.p50_us / 1e3)
    pair.loadgen_p99_ms.append(result.p99_us / 1e3)
    _say(f"run {run} c={pair.concurrency}: loadgen {result.infer_per_s:.1f} img/s {result.status_counts}")


async def triton_compare(args: argparse.Namespace, root: Path) -> list[Pair]:
    """perf_analyzer and the generator, level by level, alternating which goes first in each run."""
    files = outputs(args.out)
    work = files["perf_analyzer_dir"]
    work.mkdir(parents=True, exist_ok=True)
    info = await served_model(args)
    pixels = model_pixels(args, info)
    (work / "input.json").write_text(json.dumps(perf_analyzer_input(info, pixels)))
    send = triton_send_fn(args, info, pixels)
    _say(f"{info.name} v{info.version}: {info.input_name} uint8 [{info.image_size}, {info.image_size}, 3], "
         f"{len(pixels)} photos from {args.images}")  # fmt: skip

    pairs = {c: Pair(c) for c in args.concurrency}
    pa_rows: list[dict[str, str]] = []
    loadgen_rows: list[LevelResult] = []
    for run in range(1, args.runs + 1):
        for level in args.concurrency:
            pa = _perf_analyzer_level(args, root, work, pairs[level], run, pa_rows)
            lg = _loadgen_level(args, send, pairs[level], run, loadgen_rows)
            first, second = (pa, lg) if run % 2 else (lg, pa)  # alternate who goes first
            await first
            await second

    with files["perf_analyzer"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(pa_rows[0]))
        writer.writeheader()
        writer.writerows(pa_rows)
    write_results(loadgen_rows, files["loadgen"])
    return list(pairs.values())


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
        epilog="perf_analyzer needs root and the Debian package mmdebstrap (its root filesystem is built "
        "once under build/perf-analyzer).\nexamples:\n"
        "  python -m benchmarks.perf triton --concurrency 1,8 --runs 3 --out build/perf/triton.csv\n"
        "  python -m benchmarks.perf gateway --images path/to/photos --out build/perf/gateway.csv",
    )
    parser.add_argument("target", choices=["triton", "gateway"], help="what to load")
    parser.add_argument(
        "--images", type=Path, default=None,
        help="folder of photos (make: PERF_IMAGES); default: synthetic ones generated in build/perf/photos",
    )  # fmt: skip
    parser.add_argument("--sample", type=int, default=64, help="distinct photos to cycle through")
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 4, 8, 16],
        help="comma-separated concurrency levels",
    )
    parser.add_argument("--duration", type=float, default=30.0, help="max seconds per level (generator)")
    parser.add_argument(
        "--max-requests", type=int, default=2000, help="requests per level (the generator's bound)"
    )
    parser.add_argument(
        "--window-ms", type=int, default=3000,
        help=f"perf_analyzer: measurement window; it reports the mean of {PERF_ANALYZER_WINDOWS}",
    )  # fmt: skip
    parser.add_argument("--warmup", type=int, default=16, help="warm-up requests before each level")
    parser.add_argument("--runs", type=int, default=3, help="triton: interleaved runs per level (medians)")
    parser.add_argument("--batch", type=int, default=1, help="images per Triton request")
    # The servers `make triton` / `make gateway` start, from their own option defaults.
    triton, gateway = TritonOptions(), GatewayOptions()
    parser.add_argument("--grpc-url", default=triton.grpc_url, help="Triton gRPC host:port")
    parser.add_argument("--metrics-url", default=triton.metrics_url, help="Triton metrics URL")
    parser.add_argument("--url", default=gateway.url, help="gateway base URL")
    parser.add_argument("--model", default=triton.model, help="Triton model name")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument(
        "--perf-analyzer-timeout", type=float, default=300.0, help="seconds one perf_analyzer level may take"
    )
    parser.add_argument(
        "--out", type=Path, required=True,
        help="CSV: triton → perf_analyzer's -f rows (beside it: -loadgen.csv, -compare.md/.json, .png); "
        "gateway → the generator's rows in perf_analyzer's columns (+ .json)",
    )  # fmt: skip
    parser.add_argument(
        "--no-perf-analyzer", action="store_true", help="triton: the Python generator alone (no root needed)"
    )
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
        warmup_requests=args.warmup,
        metrics_url=args.metrics_url,
        model=args.model,
        images_per_request=images_per_request,
        on_level=lambda r: print(
            f"c={r.concurrency}: {r.infer_per_s:.1f} img/s p99 {r.p99_us / 1e3:.1f} ms {r.status_counts}",
            file=sys.stderr,
        ),
    )


def report_comparison(args: argparse.Namespace, pairs: Sequence[Pair]) -> None:
    files = outputs(args.out)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    title = (
        f"{args.model} on {args.grpc_url}, {args.runs} interleaved run(s), "
        f"{args.max_requests} requests/level, load average at the end {load}"
    )
    table = compare_table(pairs)
    files["compare_md"].write_text(f"{title}\n\n{table}\n")
    files["compare_json"].write_text(json.dumps([p.as_dict() for p in pairs], indent=2))
    compare_chart(pairs, files["chart"], title)
    print(table)
    for p in pairs:
        if p.perf_analyzer_img_s and not p.agrees:
            print(
                f"note: at c={p.concurrency} the tools differ by {abs(p.ratio - 1):.0%} (> {AGREEMENT:.0%}); "
                "see docs/benchmarks/PERF_ANALYZER.md for why they can",
                file=sys.stderr,
            )
    print(
        f"\n→ {files['perf_analyzer']} (perf_analyzer -f rows; as written: {files['perf_analyzer_dir']}/), "
        f"{files['loadgen']}, {files['compare_md']}, {files['chart']}"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        for endpoint in (args.grpc_url, args.metrics_url, args.url):
            require_loopback(endpoint)
        args.images = resolve_photos(args.images, say=lambda text: print(text, file=sys.stderr))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if min(args.concurrency) < 1 or args.runs < 1 or args.max_requests < 1:
        print("error: --concurrency levels, --runs and --max-requests must be >= 1", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        if args.target == "triton" and not args.no_perf_analyzer:
            root = ensure_root(say=lambda text: print(text, file=sys.stderr))
            pairs = asyncio.run(triton_compare(args, root))
            report_comparison(args, pairs)
            failed = [p for p in pairs if p.perf_analyzer_failures]
            if failed:
                print(
                    f"error: perf_analyzer failed in {sum(len(p.perf_analyzer_failures) for p in failed)} "
                    f"measurement(s) (c={','.join(str(p.concurrency) for p in failed)}); first: "
                    f"{failed[0].perf_analyzer_failures[0]}",
                    file=sys.stderr,
                )
                return 1
            return 0
        results = asyncio.run(_sweep(args))
    except (ConnectionError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PerfRootError as exc:
        print(f"error: {exc} (or --no-perf-analyzer for the Python generator alone)", file=sys.stderr)
        return 1
    write_results(results, args.out)
    print(markdown_table(results))
    print(f"\n→ {args.out} (perf_analyzer columns) and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
