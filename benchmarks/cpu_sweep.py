"""The CPU Triton configuration, chosen by measurement: ``make cpu-sweep``.

    python -m benchmarks.cpu_sweep --images DIR --record

Every variant is the generated CPU repository (``export.repository``'s writer, as ``make up`` builds
it) with one thing changed, loaded into one real Triton under its own name and measured by NVIDIA's
perf_analyzer (gRPC, real photos as uint8 tensors at the served size) at each concurrency level:

- layout: instances × onnxruntime intra-op threads (1×2, 2×1, 1×1 on two cores),
- dynamic batching: max queue delay (0, 500, 2000, 5000 µs) and preferred batch sizes (the
  default list, or none: Triton then sends whatever has queued).

Rounds are interleaved (every variant once, then again), and the medians are compared. The rule
that picks the default is written next to the table: the highest img/s at the top concurrency
level among variants whose lone-request p99 (c=1) stays within ``P99_SLACK`` of the best one — a
queue delay that buys throughput by making a single user wait is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import stack
from benchmarks.perf import perf_analyzer_input, photo_files, read_perf_analyzer_csv
from benchmarks.perf_root import WORK_MOUNT, PerfRootError, ensure_root, run_perf_analyzer
from benchmarks.photos import resolve_photos
from benchmarks.portable import portable_arg, portable_path
from benchmarks.report import sweep_table
from contract.model import CONFIG_FILENAME, MODEL_NAME
from contract.paths import PROJECT_ROOT
from export.triton_config import read_config, write_config
from imaging import load_for_model
from imaging.cli import ArgumentParser
from scoring.triton_model import TritonModel
from serving.triton import TritonLauncher, TritonOptions
from training.checkpoint import load_checkpoint

DEFAULT_CHECKPOINT = PROJECT_ROOT / "models" / "bundled" / "model.pt"
DEFAULT_OUT = PROJECT_ROOT / "build" / "cpu-sweep"
RECORD_DIR = PROJECT_ROOT / "docs" / "benchmarks"
# A variant may lose at most this much lone-request p99 against the best variant and still win.
P99_SLACK = 1.25
LAYOUTS = ((1, 2), (2, 1), (1, 1))  # (instances, intra-op threads)
QUEUE_DELAYS_US = (0, 500, 2_000, 5_000)
PREFERRED = (8, 16, 32)
NO_PREFERENCE_DELAY_US = 2_000  # "preferred: none" is measured at this delay


@dataclass(frozen=True)
class Variant:
    instances: int
    threads: int
    max_queue_delay_us: int
    preferred: tuple[int, ...]

    @property
    def label(self) -> str:
        pref = ",".join(map(str, self.preferred)) or "none"
        return f"{self.instances}x{self.threads} delay={self.max_queue_delay_us}us pref={pref}"

    @property
    def export_flags(self) -> str:
        pref = " ".join(map(str, self.preferred))
        return (
            f"--cpu-instances {self.instances} --cpu-threads {self.threads} "
            f"--max-queue-delay-us {self.max_queue_delay_us} --preferred-batch-sizes {pref or '(none)'}"
        )


def variants() -> list[Variant]:
    grid = [Variant(i, t, d, PREFERRED) for i, t in LAYOUTS for d in QUEUE_DELAYS_US]
    grid += [Variant(i, t, NO_PREFERENCE_DELAY_US, ()) for i, t in LAYOUTS]
    return grid


def generated_default(model_dir: Path) -> Variant:
    """The variant ``python -m export`` wrote by default for this model (its config, as generated)."""
    config = read_config(model_dir / CONFIG_FILENAME)
    return Variant(
        config.instance_group[0].count,
        int(config.parameters["ort_intra_op_threads"].string_value),
        config.dynamic_batching.max_queue_delay_microseconds,
        tuple(config.dynamic_batching.preferred_batch_size),
    )


@dataclass
class Measured:
    variant: Variant
    img_s: dict[int, list[float]] = field(default_factory=dict)
    p99_ms: dict[int, list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def median(self, which: str, level: int) -> float:
        values = getattr(self, which).get(level, [])
        return statistics.median(values) if values else float("nan")

    def as_dict(self, levels: Sequence[int]) -> dict[str, Any]:
        return {
            "variant": {**asdict(self.variant), "label": self.variant.label},
            "img_s": {str(c): self.img_s.get(c, []) for c in levels},
            "p99_ms": {str(c): self.p99_ms.get(c, []) for c in levels},
            "median_img_s": {str(c): self.median("img_s", c) for c in levels},
            "median_p99_ms": {str(c): self.median("p99_ms", c) for c in levels},
            "failures": self.failures,
        }


def choose(measured: Sequence[Measured], levels: Sequence[int]) -> tuple[Measured, str]:
    """The variant with the most img/s under load (mean over every level above the lowest) among
    those whose lone-request p99 (lowest level) is within P99_SLACK of the best; and the rule, said."""
    low, loaded = min(levels), [c for c in levels if c != min(levels)] or list(levels)
    ok = [m for m in measured if not m.failures]
    best_p99 = min(m.median("p99_ms", low) for m in ok)
    eligible = [m for m in ok if m.median("p99_ms", low) <= P99_SLACK * best_p99]
    chosen = max(eligible, key=lambda m: statistics.mean(m.median("img_s", c) for c in loaded))
    rule = (
        f"most img/s under load (mean of medians at c={', '.join(map(str, loaded))}) among variants whose "
        f"median p99 at c={low} is within {P99_SLACK:.2f}x of the best ({best_p99:.1f} ms)"
    )
    return chosen, rule


def _from_record(result: dict[str, Any]) -> list[Measured]:
    return [
        Measured(
            Variant(
                row["variant"]["instances"],
                row["variant"]["threads"],
                row["variant"]["max_queue_delay_us"],
                tuple(row["variant"]["preferred"]),
            ),
            img_s={int(c): v for c, v in row["img_s"].items()},
            p99_ms={int(c): v for c, v in row["p99_ms"].items()},
            failures=list(row["failures"]),
        )
        for row in result["variants"]
    ]


def apply_rule(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with its choice (re)made by the rule above, from its own recorded measurements."""
    chosen, rule = choose(_from_record(result), result["concurrency"])
    return {
        **result,
        "chosen": chosen.variant.label,
        "chosen_variant": asdict(chosen.variant),
        "chosen_flags": chosen.variant.export_flags,
        "rule": rule,
    }


def variant_dir(source: Path, repository: Path, name: str, variant: Variant) -> None:
    """The generated model folder, copied (ONNX files hard-linked) with one variant's settings."""
    target = repository / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, copy_function=os.link)
    config_path = target / CONFIG_FILENAME
    config = read_config(config_path)
    config.name = name
    config.instance_group[0].count = variant.instances
    config.parameters["ort_intra_op_threads"].string_value = str(variant.threads)
    config.dynamic_batching.max_queue_delay_microseconds = variant.max_queue_delay_us
    del config.dynamic_batching.preferred_batch_size[:]
    config.dynamic_batching.preferred_batch_size.extend(variant.preferred)
    config_path.unlink()  # never write through a hard link into the generated repository
    write_config(config, config_path)


def _model_call(options: TritonOptions, name: str, action: str, timeout_s: float = 180.0) -> None:
    request = urllib.request.Request(
        f"{options.http_url}/v2/repository/models/{name}/{action}", data=b"{}", method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout_s):
        pass


def measure_variant(
    args: argparse.Namespace, root: Path, work: Path, triton: TritonOptions, name: str, m: Measured, run: int
) -> None:
    for level in args.concurrency:
        csv_name = f"{name}-c{level}-run{run}.csv"
        pa_args = [
            "-m", name, "-u", triton.grpc_url, "-i", "grpc", "-b", "1",
            "--concurrency-range", f"{level}:{level}",
            "--input-data", f"{WORK_MOUNT}/input.json",
            # Time windows, not a request count: perf_analyzer's request-count mode rounds its
            # img/s to whole-second windows (60 requests in 1.4 s read as 60 or 30 img/s).
            "--measurement-mode", "time_windows", "--measurement-interval", str(args.window_ms),
            "--max-trials", str(args.windows), "--stability-percentage", "9999",
            "--warmup-request-count", str(args.warmup),
            "--percentile", "99",
            "-f", f"{WORK_MOUNT}/{csv_name}",
        ]  # fmt: skip
        for attempt in (1, 2):  # one retry: a single stray window fails a whole level
            try:
                run_perf_analyzer(root, work, pa_args, timeout_s=args.perf_analyzer_timeout, quiet=True)
                break
            except PerfRootError as exc:
                print(f"    c={level} attempt {attempt}: {exc}", file=sys.stderr)
                if attempt == 2:
                    m.failures.append(f"run {run} c={level}: {exc}")
        else:
            continue
        row = read_perf_analyzer_csv(work / csv_name)[0]
        m.img_s.setdefault(level, []).append(float(row["Inferences/Second"]))
        m.p99_ms.setdefault(level, []).append(float(row["p99 latency"]) / 1e3)


def chart(results: Sequence[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.8), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        low, top = str(min(result["concurrency"])), str(max(result["concurrency"]))
        for row in result["variants"]:
            label = row["variant"]["label"]
            x, y = row["median_p99_ms"][low], row["median_img_s"][top]
            colour = "tab:green" if label == result["chosen"] else "tab:grey"
            if label == result["current_default"]:
                colour = "tab:orange" if label != result["chosen"] else colour
            ax.scatter(x, y, color=colour, s=36)
            ax.annotate(label, (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points")
        ax.set_xlabel(f"p99 at c={low} (ms)")
        ax.set_ylabel(f"img/s at c={top}")
        ax.set_title(f"{result['architecture']} {result['image_size']}px {result['precision']}")
        ax.grid(alpha=0.3)
    fig.suptitle("CPU Triton variants (green: chosen, orange: previous default)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def sweep_model(args: argparse.Namespace, root: Path, checkpoint: Path, spec_label: str) -> dict[str, Any]:
    work = args.out / spec_label
    data_dir = work / "perf_analyzer"
    data_dir.mkdir(parents=True, exist_ok=True)
    _, meta = load_checkpoint(checkpoint)
    size = int(meta.image_size)
    photos = photo_files(args.images, args.sample)
    pixels = np.stack([load_for_model(p.read_bytes(), size) for p in photos])
    repos = stack.build_repositories(checkpoint, work, pixels[:64])
    source = repos.cpu / (stack.INT8_MODEL if args.precision == "int8" else MODEL_NAME)
    default = generated_default(source)
    triton = stack.local_triton(repos.cpu, work)
    launcher = TritonLauncher(triton)
    launcher.start()
    try:
        info = asyncio.run(_info(triton))
        (data_dir / "input.json").write_text(json.dumps(perf_analyzer_input(info, pixels)))
        grid = variants()
        measured = [Measured(v) for v in grid]
        names = [f"sweep{i:02d}" for i in range(len(grid))]
        for name, variant in zip(names, grid, strict=True):
            variant_dir(source, repos.cpu, name, variant)
        for run in range(1, args.rounds + 1):
            for i, (name, m) in enumerate(zip(names, measured, strict=True)):
                t0 = time.perf_counter()
                _model_call(triton, name, "load")
                try:
                    measure_variant(args, root, data_dir, triton, name, m, run)
                finally:
                    _model_call(triton, name, "unload")
                    time.sleep(1.0)  # the python-backend stubs exit before the next variant loads
                top = max(args.concurrency)
                print(
                    f"  [{spec_label} round {run}/{args.rounds} {i + 1}/{len(grid)}] {m.variant.label}: "
                    + ", ".join(f"c={c} {m.img_s.get(c, [float('nan')])[-1]:.1f}" for c in args.concurrency)
                    + f" img/s; p99 c={top} {m.p99_ms.get(top, [float('nan')])[-1]:.1f} ms"
                    + f" ({time.perf_counter() - t0:.0f} s)",
                    file=sys.stderr,
                )
    finally:
        launcher.stop()
    return apply_rule(
        {
            "architecture": meta.model_name,
            "image_size": size,
            "precision": args.precision,
            "checkpoint": portable_path(checkpoint),
            "concurrency": list(args.concurrency),
            "rounds": args.rounds,
            "variants": [m.as_dict(args.concurrency) for m in measured],
            "current_default": default.label,
        }
    )


async def _info(triton: TritonOptions) -> Any:
    model = TritonModel(triton.grpc_url, MODEL_NAME)
    try:
        return await model.connect()
    finally:
        await model.close()


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m benchmarks.cpu_sweep",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--images", type=Path, default=None, help="folder of photos (default: synthetic set)")
    p.add_argument("--sample", type=int, default=64, help="photos sent (as uint8 tensors)")
    p.add_argument(
        "--checkpoint", type=Path, action="append", default=None,
        help=f"checkpoint to sweep (repeatable; default {portable_path(DEFAULT_CHECKPOINT)})",
    )  # fmt: skip
    p.add_argument(
        "--resnet18",
        action="store_true",
        help="also sweep a seeded random-weight ResNet18 at 224 px (the bench model)",
    )
    p.add_argument(
        "--precision", choices=["fp32", "int8"], default="fp32", help="which ONNX file the variants serve"
    )
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 16],
                   help="comma-separated perf_analyzer concurrency levels")  # fmt: skip
    p.add_argument("--window-ms", type=int, default=2000, help="perf_analyzer measurement window")
    p.add_argument(
        "--windows",
        type=int,
        default=3,
        help="windows per level (>= 3: perf_analyzer judges the last 3; their mean is reported)",
    )
    p.add_argument("--warmup", type=int, default=20, help="warm-up requests per level (not measured)")
    p.add_argument(
        "--rounds", type=int, default=2, help="interleaved rounds over all variants (medians compared)"
    )
    p.add_argument(
        "--perf-analyzer-timeout", type=float, default=300.0, help="seconds one perf_analyzer run may take"
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="work folder (repositories, CSVs, logs)")
    p.add_argument(
        "--render", type=Path, default=None,
        help="re-apply the choosing rule to a recorded cpu_sweep.json and rewrite its page (no measuring)",
    )  # fmt: skip
    p.add_argument(
        "--record", action="store_true",
        help="write CPU_SWEEP.md, cpu_sweep.json and cpu_sweep.png under docs/benchmarks (else under --out)",
    )  # fmt: skip
    return p


def write_record(document: dict[str, Any], dest: Path) -> Path:
    """cpu_sweep.json, cpu_sweep.png and CPU_SWEEP.md in ``dest``; returns the Markdown file."""
    dest.mkdir(parents=True, exist_ok=True)
    results = document["results"]
    (dest / "cpu_sweep.json").write_text(json.dumps(document, indent=2) + "\n")
    chart(results, dest / "cpu_sweep.png")
    load = document["load_average_end"]
    text = [
        "# CPU Triton configuration sweep",
        "",
        f"Measured {document['date_utc']} on {document['cpus']} CPUs ({document['minutes']} min; "
        f"load average at the end {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}) with NVIDIA perf_analyzer "
        "over gRPC, real photos as uint8 tensors, Triton serving the CPU repository "
        "`python -m export` generates, one setting changed per variant. Medians of the rounds. "
        "`python -m benchmarks.cpu_sweep --render cpu_sweep.json` applies the rule to the recorded "
        "measurements again and rewrites this page.",
        "",
        f"Command: `{document['command']}`",
        "",
        "![variants](cpu_sweep.png)",
        "",
        *(line for r in results for line in sweep_table(r)),
    ]
    out = dest / "CPU_SWEEP.md"
    out.write_text("\n".join(text))
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.render is not None:
        document = json.loads(args.render.read_text())
        document["results"] = [apply_rule(r) for r in document["results"]]
        out = write_record(document, args.render.resolve().parent)
        for r in document["results"]:
            print(f"{r['architecture']}: chosen {r['chosen']} (previous default {r['current_default']})")
        print(f"wrote {out}")
        return 0
    args.out = args.out.resolve()
    args.images = resolve_photos(args.images, say=lambda s: print(s, file=sys.stderr))
    try:
        root = ensure_root(say=lambda text: print(text, file=sys.stderr))
    except PerfRootError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    checkpoints = [(c.resolve(), c.stem) for c in (args.checkpoint or [DEFAULT_CHECKPOINT])]
    if args.resnet18:
        spec = stack.ModelSpec("resnet18", 224, {})
        args.out.mkdir(parents=True, exist_ok=True)
        checkpoints.append((stack.random_checkpoint(args.out / "resnet18.pt", spec), "resnet18"))
    started = time.time()
    results = [sweep_model(args, root, path, label) for path, label in checkpoints]
    document = {
        "command": "python -m benchmarks.cpu_sweep "
        + " ".join(portable_arg(a) for a in (argv or sys.argv[1:])),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "minutes": round((time.time() - started) / 60, 1),
        "cpus": os.cpu_count(),
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "results": results,
    }
    out = write_record(document, RECORD_DIR if args.record else args.out)
    for r in results:
        print(f"{r['architecture']}: chosen {r['chosen']} (previous default {r['current_default']})")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
