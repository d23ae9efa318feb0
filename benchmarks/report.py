"""BENCHMARKS.md and its PNG charts from the suite's results (``results.json``, written next to the report).

Numbers only come from the results of one run; nothing here is typed in by hand. Analysis written
by people lives in ``docs/benchmarks/ANALYSIS.md`` and is linked when present.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from imaging.cli import ArgumentParser

TARGETS = ("baseline", "gateway_fp32", "gateway_int8", "triton_fp32")
LABELS = {
    "baseline": "baseline design (FastAPI + PyTorch eager)",
    "gateway_fp32": "gateway + Triton FP32",
    "gateway_int8": "gateway + Triton INT8",
    "triton_fp32": "Triton gRPC direct FP32",
}


def _med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _levels(res: dict[str, Any]) -> list[int]:
    return sorted(int(c) for c in res["matrix"]["baseline"])


def _runs(res: dict[str, Any], target: str, c: int) -> list[dict[str, Any]]:
    return list(res["matrix"][target][str(c)])


def _median(res: dict[str, Any], target: str, c: int, key: str = "infer_per_s") -> float:
    return _med([r[key] for r in _runs(res, target, c)])


def _paired(res: dict[str, Any], a: str, b: str, c: int, key: str = "infer_per_s") -> float:
    pairs = zip(_runs(res, a, c), _runs(res, b, c), strict=True)
    return _med([x[key] / max(y[key], 1e-9) for x, y in pairs])


def target_rows(res: dict[str, Any]) -> list[tuple[str, str, float, bool, str]]:
    """(criterion, target, measured, met, how) — every ratio is a median of paired runs."""
    rows: list[tuple[str, str, float, bool, str]] = []
    for c in _levels(res):
        r = _paired(res, "gateway_fp32", "baseline", c)
        rows.append((f"gateway+Triton FP32 / baseline img/s, c={c}", "≥ 1.5×", r, r >= 1.5, "×"))
    for c in _levels(res):
        r = _paired(res, "gateway_int8", "baseline", c)
        rows.append((f"gateway+Triton INT8 / baseline img/s, c={c}", "≥ 2×", r, r >= 2.0, "×"))
    for c in _levels(res):
        r = _paired(res, "gateway_fp32", "baseline", c, "p99_us")
        rows.append((f"gateway FP32 p99 / baseline p99, c={c}", "≤ 1 (no worse)", r, r <= 1.0, "×"))
    for c in _levels(res):
        r = _paired(res, "gateway_fp32", "triton_fp32", c)
        rows.append((f"gateway / Triton-direct img/s, c={c}", "≥ 0.85", r, r >= 0.85, "×"))
    b = res["batching"]
    pairs = zip(b["dynamic_batching"], b["no_batching"], strict=True)
    r = _med([x["infer_per_s"] / max(y["infer_per_s"], 1e-9) for x, y in pairs])
    c_top = b["dynamic_batching"][0]["concurrency"]
    rows.append((f"dynamic batching on / off, c={c_top}", "≥ 1.2×", r, r >= 1.2, "×"))
    s = res["scoring"]
    pairs = zip(s["runs"], s["direct"], strict=True)
    r = _med([x["img_per_s"] / max(y["infer_per_s"], 1e-9) for x, y in pairs])
    rows.append(("bulk scoring / Triton-direct img/s", "≥ 0.85", r, r >= 0.85, "×"))
    rss = rss_summary(res)
    rows.append(
        (
            f"gateway RSS after {rss['requests']} requests",
            "≤ 300 MB",
            rss["final_mb"],
            rss["final_mb"] <= 300,
            " MB",
        )
    )
    rows.append(("gateway RSS growth", "≤ 5 %", rss["growth_pct"], rss["growth_pct"] <= 5.0, " %"))
    if res.get("served"):
        top = max(res["served"]["levels"])
        r = served_bound_ratio(res["served"], top)
        rows.append(
            (f"served model: gateway / decode-only bound img/s, c={top}", f"≥ {SERVED_BOUND_TARGET}", r,
             r >= SERVED_BOUND_TARGET, "×")
        )  # fmt: skip
        low = min(res["served"]["levels"])
        r = _served_paired(res["served"], "gateway", "baseline", low)
        rows.append((f"served model: gateway / baseline img/s, c={low}", "≥ 0.9×", r, r >= 0.9, "×"))
        r = _served_paired(res["served"], "gateway", "baseline", low, "p99_us")
        rows.append((f"served model: gateway p99 / baseline p99, c={low}", "≤ 1.5×", r, r <= 1.5, "×"))
    return rows


# --- the served model (benchmarks/served.py) --------------------------------------------------

SERVED_TARGETS = ("gateway", "baseline", "triton_direct", "decode_bound")
SERVED_LABELS = {
    "gateway": "gateway + Triton",
    "baseline": "baseline design (FastAPI + PyTorch eager)",
    "triton_direct": "Triton gRPC direct",
    "decode_bound": "decode-only bound (gateway decoder)",
}
SERVED_BOUND_TARGET = 0.7
PROFILE_FILE = "served_gateway_profile.txt"


def _served_runs(served: dict[str, Any], target: str, c: int) -> list[dict[str, Any]]:
    return list(served["matrix"][target][str(c)])


def _served_median(served: dict[str, Any], target: str, c: int, key: str = "infer_per_s") -> float:
    return _med([r[key] for r in _served_runs(served, target, c)])


def _served_paired(served: dict[str, Any], a: str, b: str, c: int, key: str = "infer_per_s") -> float:
    pairs = zip(_served_runs(served, a, c), _served_runs(served, b, c), strict=True)
    return _med([x[key] / max(y[key], 1e-9) for x, y in pairs])


def served_bound_ratio(served: dict[str, Any], c: int) -> float:
    """Gateway img/s over the decode-only bound at the same concurrency, median of paired runs."""
    return _served_paired(served, "gateway", "decode_bound", c)


def combined_bound(served: dict[str, Any], c: int) -> float:
    """img/s if decoding (gateway decoder) and inference (Triton direct) shared the cores perfectly."""
    decode = _served_median(served, "decode_bound", c)
    infer = _served_median(served, "triton_direct", c)
    return 1.0 / (1.0 / max(decode, 1e-9) + 1.0 / max(infer, 1e-9))


def stage_shares(served: dict[str, Any], c: int) -> dict[str, float]:
    """Mean ms per request in each part of the gateway's time (medians of runs): decode, infer, the
    rest of the handler, and what lies outside the handler (HTTP parsing, multipart, event-loop
    queueing, the prediction log, the client), which is the client's mean latency minus the handler."""
    rows = served["stages"].get(str(c), [])

    def ms(f: Any) -> float:
        return 1e3 * _med([f(r) for r in rows])

    return {
        "client": ms(lambda r: r["client_avg_s"]),
        "decode": ms(lambda r: r["decode_s"]),
        "infer": ms(lambda r: r["infer_s"]),
        "handler_rest": ms(lambda r: r["total_s"] - r["decode_s"] - r["infer_s"]),
        "outside": ms(lambda r: r["client_avg_s"] - r["total_s"]),
    }


def _chart_served(served: dict[str, Any], path: Path) -> None:
    levels = served["levels"]
    series = {SERVED_LABELS[t]: [_served_median(served, t, c) for c in levels] for t in SERVED_TARGETS}
    _bars(levels, series, "img/s (median of runs)", path)


def _profile_text(profile: dict[str, Any]) -> str:
    lines = [
        f"# py-spy profile of the gateway at concurrency {profile['level']} (benchmarks/served.py)",
        f"# {profile['command']}",
        f"# {profile['samples']} samples of non-idle threads; own % / inclusive % of them; top "
        f"{len(profile['top'])} functions by own time",
    ]
    lines += [f"{own:6.1f} {incl:6.1f}  {fn}" for fn, own, incl in profile["top"]]
    return "\n".join(lines) + "\n"


def render_served(res: dict[str, Any], charts: dict[str, Path], link: Any) -> list[str]:
    served = res.get("served")
    head = ["## Served model (the bundled real-photo model)", ""]
    if not served:
        return [*head, "Not measured in this run (`--no-served`).", ""]
    s = res["settings"]
    levels = served["levels"]
    top = max(levels)
    lines = [
        *head,
        f"Command: `{res['command']}` (section 8, `benchmarks/served.py`). The model `make up` serves: "
        f"`{served['checkpoint']}` ({served['architecture']} at {served['image_size']}×"
        f"{served['image_size']}, {served['precision'].upper()} CPU repository), exported by the export "
        f"package's repository writer ({served['export_s']:.1f} s), served by Triton (start "
        f"{served['triton_start_s']:.1f} s) and a gateway process (start {served['gateway_start_s']:.1f} s); "
        "the baseline design serves the same checkpoint (start "
        f"{served['baseline_start_s']:.1f} s, alongside the export). Same "
        f"photos as above (`{s['images']}`, {s['sample']} cycled), interleaved in each of {s['runs']} runs, "
        f"≤ {s['duration']:g} s and ≤ {s['max_requests']} requests per level.",
        "",
        "The decode-only bound: the gateway's own decoder (`gateway.decoding.Decoder`, built from the "
        f"gateway's settings: {served['decode_threads']} decode threads) decoding the same uploads at the "
        "served size in this one process at the same concurrency, with nothing else to do — what this "
        "design could serve on these cores if HTTP, inference and logging cost nothing. "
        f"Target: gateway ≥ {SERVED_BOUND_TARGET} of it at c={top}. The decode-only bound leaves out the "
        "model's own compute, which runs on the same cores; the decode + infer bound adds it as if the "
        "two shared the CPU perfectly, 1 / (1 / decode-only + 1 / Triton direct) (derived, not measured).",
        "",
        "| concurrency | gateway img/s | baseline img/s | Triton direct img/s | decode-only bound img/s "
        "| gateway / bound | decode + infer bound img/s | gateway / that | gateway / baseline |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in levels:
        ratio = served_bound_ratio(served, c)
        mark = f" {'✅' if ratio >= SERVED_BOUND_TARGET else '❌'}" if c == top else ""
        rates = " | ".join(f"{_served_median(served, t, c):.1f}" for t in SERVED_TARGETS)
        both = combined_bound(served, c)
        lines.append(
            f"| {c} | {rates} | {ratio:.2f}{mark} | {both:.1f} "
            f"| {_served_median(served, 'gateway', c) / max(both, 1e-9):.2f} "
            f"| {_served_paired(served, 'gateway', 'baseline', c):.2f}× |"
        )
    lines += [
        "",
        "Latency (ms, medians of runs):",
        "",
        "| concurrency | " + " | ".join(f"{SERVED_LABELS[t]} p50 / p99" for t in SERVED_TARGETS[:3]) + " |",
        "|---:|" + "---:|" * 3,
    ]
    for c in levels:
        cells = [
            " / ".join(f"{_served_median(served, t, c, key) / 1e3:.1f}" for key in ("p50_us", "p99_us"))
            for t in SERVED_TARGETS[:3]
        ]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    errors = {t: sum(r["errors"] for c in levels for r in _served_runs(served, t, c)) for t in SERVED_TARGETS}
    lines += ["", f"Non-OK responses over all levels: {errors}.", "", f"![served]({link('served')})", ""]

    lines += [
        "Where the gateway's time goes: its `stage_duration_seconds` histograms (`/metrics`) scraped "
        "before and after each of its levels, mean ms per request (medians of runs) and share of the "
        "client's mean latency. decode includes the wait for a decode thread; infer is the Triton call "
        "(queue and compute included); handler rest = the handler's total minus both (upload read, hash, "
        "admission, response body); outside the handler = client mean − handler total (HTTP parsing, "
        "multipart form, event-loop queueing, the prediction log, the load generator).",
        "",
        "| concurrency | client mean ms | decode | infer | handler rest | outside the handler (HTTP …) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for c in levels:
        sh = stage_shares(served, c)
        cells = [
            f"{sh[k]:.1f} ({100 * sh[k] / sh['client']:.0f} %)" if sh["client"] else "–"
            for k in ("decode", "infer", "handler_rest", "outside")
        ]
        lines.append(f"| {c} | {sh['client']:.1f} | " + " | ".join(cells) + " |")
    profile = served["profile"]
    lines.append("")
    if profile.get("error") or not profile.get("top"):
        lines += [f"py-spy profile: not taken — {profile.get('error') or 'no samples'}.", ""]
    else:
        lines += [
            f"py-spy profile of the gateway at c={profile['level']} (one extra level after the matrix, so "
            f"sampling does not slow the measured runs; `{profile['command']}`; {profile['samples']} samples "
            f"of non-idle threads; full list: [{PROFILE_FILE}]({link('profile')})). Top functions by own "
            "time:",
            "",
            "| own % | inclusive % | function |",
            "|---:|---:|---|",
        ]
        lines += [f"| {own:.1f} | {incl:.1f} | `{fn}` |" for fn, own, incl in profile["top"][:10]]
        lines.append("")
    return lines


def cpu_split(res: dict[str, Any], c: int) -> dict[str, float] | None:
    """Median CPU ms per request by process, FP32 gateway path vs Triton direct, at level ``c``."""
    cpu = res.get("cpu_per_request") or {}
    gw, direct = cpu.get("gateway_fp32", {}).get(str(c)), cpu.get("triton_fp32", {}).get(str(c))
    if not gw or not direct:
        return None
    out = {f"gw_{k}": _med([r[k] for r in gw]) for k in gw[0]}
    out.update({f"direct_{k}": _med([r[k] for r in direct]) for k in direct[0]})
    gw_total = out["gw_gateway"] + out["gw_triton"] + out["gw_client"]
    direct_total = out["direct_triton"] + out["direct_client"]
    # All three share the cores: CPU-bound throughput is cores / total CPU per request.
    out["ratio_machine"] = direct_total / gw_total
    # Clients elsewhere: only the servers' CPU counts.
    out["ratio_servers"] = out["direct_triton"] / (out["gw_triton"] + out["gw_gateway"])
    return out


def cpu_split_lines(res: dict[str, Any]) -> list[str]:
    rows = [(c, cpu_split(res, c)) for c in _levels(res)]
    if not any(split for _, split in rows):
        return []
    lines = [
        "",
        "CPU per request, by process (ms, medians over runs; /proc utime+stime across each level, warm-up "
        "excluded; Triton includes its python-backend stubs, the client is the load generator):",
        "",
        "| c | gateway path: gateway | Triton | client | direct: Triton | client "
        "| CPU-implied gateway/direct, shared cores | same, clients elsewhere |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c, x in rows:
        if x:
            lines.append(
                f"| {c} | {x['gw_gateway']:.2f} | {x['gw_triton']:.2f} | {x['gw_client']:.2f} "
                f"| {x['direct_triton']:.2f} | {x['direct_client']:.2f} | {x['ratio_machine']:.2f} "
                f"| {x['ratio_servers']:.2f} |"
            )
    return lines


def rss_summary(res: dict[str, Any]) -> dict[str, float]:
    points = res["rss"]["points"]
    first, last = points[0][1], points[-1][1]
    return {
        "requests": points[-1][0],
        "start_mb": first / 1e6,
        "final_mb": last / 1e6,
        "growth_pct": 100.0 * (last - first) / first if first else float("nan"),
    }


def _list(runs: Sequence[dict[str, Any]]) -> str:
    return ", ".join(f"{r['infer_per_s']:.1f}" for r in runs)


def _list_s(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def _fmt(v: float, unit: str) -> str:
    # Ratios and percentages with two decimals: 4.97 % must not read as a rounded "5.0 %".
    return f"{v:.2f}{unit}" if unit in ("×", " %") else f"{v:.1f}{unit}"


def _chart_throughput(res: dict[str, Any], path: Path, key: str, ylabel: str, scale: float) -> None:
    levels = _levels(res)
    series = {LABELS[t]: [_median(res, t, c, key) * scale for c in levels] for t in TARGETS}
    _bars(levels, series, ylabel, path)


def _bars(levels: Sequence[int], series: dict[str, list[float]], ylabel: str, path: Path) -> None:
    """Grouped bars, one group per concurrency level: the style of every load chart here."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series.items()):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(levels))]
        ax.bar(xs, values, width, label=label)
    ax.set_xticks(range(len(levels)), [f"concurrency {c}" for c in levels])
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _chart_targets(rows: list[tuple[str, str, float, bool, str]], path: Path) -> None:
    ratio_rows = [r for r in rows if r[4] == "×"]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(ratio_rows) + 1.2))
    names = [r[0] for r in ratio_rows][::-1]
    values = [r[2] for r in ratio_rows][::-1]
    colors = ["tab:green" if r[3] else "tab:red" for r in ratio_rows][::-1]
    ax.barh(names, values, color=colors)
    for y, r in enumerate(ratio_rows[::-1]):
        goal = float(r[1].split()[1].rstrip("×"))
        ax.plot([goal, goal], [y - 0.4, y + 0.4], color="black", lw=1.5)
    ax.set_xlabel("measured ratio (bar) vs target (black tick); green = met")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _chart_rss(res: dict[str, Any], path: Path) -> None:
    points = res["rss"]["points"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot([p[0] for p in points], [p[1] / 1e6 for p in points], marker="o")
    ax.set_xlabel(f"requests after {res['rss']['warmup_requests']} warm-up requests")
    ax.set_ylabel("gateway RSS (MB)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _chart_engines(res: dict[str, Any], path: Path) -> None:
    engines = res["engines"]
    batches = sorted({int(k.split("|")[1]) for k in engines})
    names = sorted({k.split("|")[0] for k in engines})
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, name in enumerate(names):
        xs = [j + (i - 0.5) * 0.38 for j in range(len(batches))]
        ax.bar(xs, [_med(engines[f"{name}|{b}"]) for b in batches], 0.38, label=name)
    ax.set_xticks(range(len(batches)), [f"batch {b}" for b in batches])
    ax.set_ylabel("img/s (in process)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_charts(res: dict[str, Any], folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    charts = {
        "throughput": folder / "throughput.png",
        "p99": folder / "p99_latency.png",
        "targets": folder / "targets.png",
        "rss": folder / "gateway_rss.png",
        "engines": folder / "ort_vs_eager.png",
    }
    _chart_throughput(res, charts["throughput"], "infer_per_s", "img/s (median of runs)", 1.0)
    _chart_throughput(res, charts["p99"], "p99_us", "p99 latency, ms (median of runs)", 1e-3)
    _chart_targets(target_rows(res), charts["targets"])
    _chart_rss(res, charts["rss"])
    _chart_engines(res, charts["engines"])
    served = res.get("served")
    if served:
        charts["served"] = folder / "served.png"
        _chart_served(served, charts["served"])
        if served["profile"].get("top"):
            charts["profile"] = folder / PROFILE_FILE
            charts["profile"].write_text(_profile_text(served["profile"]))
    return charts


def render(res: dict[str, Any], charts: dict[str, Path], out: Path) -> str:
    def link(name: str) -> str:
        return os.path.relpath(charts[name], out.parent)

    s = res["settings"]
    cmd = res["command"]
    gflop = res["flops_per_image"] / 1e9
    m = res["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{cmd}` ({res['wall_s'] / 60:.1f} min) on {m['date']}, commit `{m['git']}`. "
        "Do not edit by hand: rerun `make bench`.",
        "",
        f"- Machine: {m['cpu']}, Python {m['python']}. Load average (1/5/15 min) at start "
        f"**{res['load_start']}**, at end **{res['load_end']}** (the machine is shared; other work was "
        "running when the load average is above ~0.5).",
        f"- Model: `{s['model']}` at {s['image_size']}×{s['image_size']}, **random (seeded) weights** — "
        "speed does not depend on weight values; accuracy is reported by training/export, and below "
        "where a trained checkpoint exists. The same checkpoint feeds the baseline server, the ONNX "
        f"export and PyTorch eager. {gflop:.2f} GFLOP per image (PyTorch flop counter).",
        f"- Photos: `{s['images']}`; load tests cycle through {s['sample']} of them (real JPEG bytes to "
        "HTTP servers; decoded uint8 tensors to Triton direct).",
        f"- Every comparison is interleaved within each of **{s['runs']} runs** (rotated order); tables show "
        f"medians, ratios are medians of paired runs. Load levels: ≤ {s['duration']:g} s and ≤ "
        f"{s['max_requests']} requests each, closed loop, 127.0.0.1 only.",
        "",
    ]
    analysis = charts["throughput"].parent / "ANALYSIS.md"
    if analysis.is_file():
        lines += [
            f"Profiles and what limits each figure: [ANALYSIS.md]({os.path.relpath(analysis, out.parent)}).",
            "",
        ]

    rows = target_rows(res)
    lines += ["## Targets", "", "| criterion | target | measured | met |", "|---|---|---:|:---:|"]
    lines += [f"| {n} | {t} | {_fmt(v, u)} | {'✅' if ok else '❌'} |" for n, t, v, ok, u in rows]
    lines += ["", f"![targets]({link('targets')})", ""]

    lines += [
        "## Serving: baseline design vs gateway + Triton",
        "",
        f"Command: `{cmd}` (section 4). Standalone equivalent per target: `python -m benchmarks.perf gateway "
        f"--images {s['images']} --url <server> --concurrency {','.join(map(str, s['concurrency']))} "
        f"--duration {s['duration']:g} --max-requests {s['max_requests']}` (and `perf triton --batch 1` for "
        "Triton direct). Baseline = `python -m benchmarks.baseline_server --checkpoint <same .pt>`.",
        "",
        "| target | concurrency | img/s (median) | p50 ms | p99 ms | img/s per run | Triton avg batch |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for t in TARGETS:
        for c in _levels(res):
            runs = _runs(res, t, c)
            batch = [r["server_avg_batch"] for r in runs if r.get("server_avg_batch")]
            lines.append(
                f"| {LABELS[t]} | {c} | {_median(res, t, c):.1f} | {_median(res, t, c, 'p50_us') / 1e3:.1f} "
                f"| {_median(res, t, c, 'p99_us') / 1e3:.1f} | {_list(runs)} "
                f"| {f'{_med(batch):.1f}' if batch else '–'} |"
            )
    lines += cpu_split_lines(res)
    errors = {t: sum(r["errors"] for c in _levels(res) for r in _runs(res, t, c)) for t in TARGETS}
    lines += [
        "",
        f"Non-OK responses over all levels: {errors}.",
        "",
        f"![throughput]({link('throughput')})",
        f"![p99]({link('p99')})",
        "",
    ]

    b = res["batching"]
    lines += [
        "## Triton dynamic batching on vs off",
        "",
        f"Command: `{cmd}` (section 5): 1-image gRPC requests at concurrency "
        f"{b['dynamic_batching'][0]['concurrency']} "
        "to `cats_dogs` and to `cats_dogs_nobatch`, the same model whose config is derived from the "
        "generated one with `dynamic_batching` removed (`benchmarks/stack.py`), loaded in the same server.",
        "",
        "| config | img/s (median) | p99 ms | avg batch | img/s per run |",
        "|---|---:|---:|---:|---|",
    ]
    for name, runs in b.items():
        batch = [r["server_avg_batch"] for r in runs if r.get("server_avg_batch")]
        lines.append(
            f"| {name} | {_med([r['infer_per_s'] for r in runs]):.1f} "
            f"| {_med([r['p99_us'] for r in runs]) / 1e3:.1f} "
            f"| {f'{_med(batch):.1f}' if batch else '–'} | {_list(runs)} |"
        )

    sc = res["scoring"]
    lines += [
        "",
        "## Bulk scoring vs Triton direct",
        "",
        f"Scorer: `{sc['runs'][0]['command']}` ({sc['photos']} photos, fresh output each run; "
        "img/s from its own summary line, i.e. the pipeline without interpreter start-up). "
        f"Triton direct: the same model fed pre-decoded batches of {SCORER_BATCH_TEXT} at the same "
        "depth (`python -m benchmarks.perf triton --batch 32 --concurrency 4`), measured right after "
        "each scorer run.",
        "",
        "| run | scorer img/s | scorer wall s | Triton direct img/s | ratio |",
        "|---:|---:|---:|---:|---:|",
    ]
    for i, (r, d) in enumerate(zip(sc["runs"], sc["direct"], strict=True), 1):
        lines.append(
            f"| {i} | {r['img_per_s']:.1f} | {r['wall_s']:.1f} | {d['infer_per_s']:.1f} | "
            f"{r['img_per_s'] / max(d['infer_per_s'], 1e-9):.2f} |"
        )

    rss = rss_summary(res)
    ts, gs = res["triton_start_s"], res["gateway_start_s"]
    lines += [
        "",
        "## Gateway memory and cold starts",
        "",
        f"Command: `{cmd}` (sections 2, 3, 7). RSS of the gateway process (+ children) from /proc after "
        f"{res['rss']['warmup_requests']} warm-up requests, then every "
        f"{max(1, s['rss_requests'] // 10)} requests "
        f"at concurrency 8 (`--rss-requests {s['rss_requests']}`"
        + (
            "; the issue's 20000 takes ~6 min here, pass `--rss-requests 20000` for it)."
            if s["rss_requests"] < 20000
            else ")."
        ),
        "",
        f"- RSS: {rss['start_mb']:.1f} MB after warm-up → {rss['final_mb']:.1f} MB after "
        f"{rss['requests']} requests "
        f"({rss['growth_pct']:+.1f} %), at {res['rss']['img_per_s']:.1f} img/s.",
        f"- Triton cold start (spawn → model ready, warm-up sample included): median {_med(ts):.2f} s "
        f"(runs: {_list_s(ts)}).",
        f"- Gateway cold start (spawn → /health/ready): median {_med(gs):.2f} s (runs: {_list_s(gs)}).",
        "- Baseline server start (spawn → /health, PyTorch import + checkpoint load): "
        f"{res['baseline_start_s']:.2f} s.",
        "",
        f"![rss]({link('rss')})",
        "",
    ]

    lines += render_served(res, charts, link)

    eng = res["engines"]
    lines += [
        "## ONNX Runtime vs PyTorch eager (in process)",
        "",
        f"Command: `{cmd}` (section 8): the served `model.onnx` in ONNX Runtime (ORT_ENABLE_ALL, "
        f"{s['threads']} threads) vs the same checkpoint in PyTorch eager ({s['threads']} threads, "
        "inference_mode), same uint8 batches, interleaved.",
        "",
        "| batch | ONNX Runtime img/s | PyTorch eager img/s | ORT / eager |",
        "|---:|---:|---:|---:|",
    ]
    for bs in sorted({int(k.split("|")[1]) for k in eng}):
        o, e = _med(eng[f"ONNX Runtime|{bs}"]), _med(eng[f"PyTorch eager|{bs}"])
        lines.append(f"| {bs} | {o:.1f} | {e:.1f} | {o / e:.2f}× |")
    lines += ["", f"![engines]({link('engines')})", ""]

    i8 = res["int8"]
    lines += ["## INT8 vs FP32", "", f"Command: `{i8['command']}`", "", i8["table"], ""]
    acc = i8.get("accuracy")
    if acc:
        lines += [
            f"Accuracy of the trained checkpoint `{acc['checkpoint']}` ({acc['architecture']}) on "
            f"{acc['images']} labelled photos ({acc.get('evaluated_on', s['images'])}): "
            f"FP32 **{acc['fp32']:.3f}**, INT8 **{acc['int8']:.3f}** "
            f"(Δ {acc['int8'] - acc['fp32']:+.3f}; INT8 calibrated on 64 other photos).",
            "",
        ]
    else:
        lines += [
            "Accuracy: no trained checkpoint was present at run time (`--accuracy-checkpoint`, default "
            "`artifacts/checkpoints/last.pt`), so INT8 vs FP32 accuracy is not measured here; "
            "`python -m export --int8` gates the INT8 variant on the test split at export time.",
            "",
        ]

    gemm = res["gemm"]
    per_library = {name: _med(runs) for name, runs in gemm["gflops"].items()}
    best_library, measured = max(per_library.items(), key=lambda item: item[1])
    given = res.get("peak_gflops")
    lines += [
        "## Achieved GFLOP/s vs the CPU's peak",
        "",
        f"Peak, measured in this run: **{measured:.1f} GFLOP/s** FP32, the best of three libraries' "
        f"{gemm['n']}×{gemm['n']} matrix products with {gemm['threads']} threads (medians of "
        f"{len(next(iter(gemm['gflops'].values())))} interleaved runs: "
        + ", ".join(f"{name} {rate:.0f}" for name, rate in per_library.items())
        + f"; best: {best_library}). The VM reports no boost clock to compute a theoretical peak from, so "
        "this is a lower bound of it: a well-blocked convolution can run slightly above a library's "
        f"square GEMM. Achieved = img/s × {gflop:.2f} GFLOP (ResNet18 at 224 ≈ 3.64 GFLOP = 1.82 GMAC). "
        "INT8 runs integer kernels, so its share of an FP32 peak is only indicative (it can exceed 100 %).",
        "",
    ]
    given_head, given_rule = (f" % of {given:.0f} GFLOP/s (--peak-gflops) |", "---:|") if given else ("", "")
    lines += [
        f"| path | img/s | GFLOP/s | % of measured peak |{given_head}",
        f"|---|---:|---:|---:|{given_rule}",
    ]
    best = {t: max(_median(res, t, c) for c in _levels(res)) for t in TARGETS}
    paths = [(f"{LABELS[t]} (best concurrency)", v) for t, v in best.items()]
    paths += [(f"{k.replace('|', ', batch ')} (in process)", _med(v)) for k, v in sorted(eng.items())]
    paths.append(("bulk scorer", _med([r["img_per_s"] for r in sc["runs"]])))
    for name, rate in paths:
        share = f" {100 * rate * gflop / given:.1f} % |" if given else ""
        achieved = rate * gflop
        lines.append(f"| {name} | {rate:.1f} | {achieved:.1f} | {100 * achieved / measured:.1f} % |{share}")
    lines.append("")
    lines += render_companions(res)
    return "\n".join(lines)


# --- companion runs (make cpu-sweep, make rss-probe), copied into results.json by the suite --------


def sweep_table(result: dict[str, Any]) -> list[str]:
    """One model's CPU-sweep variants, fastest at the top level first."""
    levels = result["concurrency"]
    head = " | ".join(f"c={c} img/s (p99 ms)" for c in levels)
    lines = [
        f"### {result['architecture']} at {result['image_size']} px ({result['precision']})",
        "",
        f"| variant | {head} |",
        "|---|" + "---:|" * len(levels),
    ]
    chosen, current = result["chosen"], result["current_default"]
    for row in sorted(result["variants"], key=lambda r: -r["median_img_s"][str(max(levels))]):
        label = row["variant"]["label"]
        marks = " **chosen**" if label == chosen else ""
        marks += " (previous default)" if label == current else ""
        cells = " | ".join(
            f"{row['median_img_s'][str(c)]:.1f} ({row['median_p99_ms'][str(c)]:.1f})" for c in levels
        )
        lines.append(f"| {label}{marks} | {cells} |")
    lines += ["", f"Chosen by the rule: {result['rule']}. Export flags: `{result['chosen_flags']}`.", ""]
    return lines


def rss_table(document: dict[str, Any]) -> list[str]:
    """The memory probe's modes side by side, and what grew in the Python heap."""
    lines = [
        "| mode | RSS start MiB | RSS end MiB | growth | img/s (median) | RSS at each reading, MiB |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in document["results"]:
        rates = sorted(p["img_s"] for p in r["points"] if p["img_s"])
        readings = " → ".join(f"{p['rss'] / 2**20:.1f}" for p in r["points"])
        lines.append(
            f"| {r['mode']} | {r['rss_start_mib']:.1f} | {r['rss_end_mib']:.1f} | {r['growth_pct']:+.1f} % "
            f"| {rates[len(rates) // 2]:.0f} | {readings} |"
        )
    traced = next((r for r in document["results"] if r["mode"].startswith("traced")), None)
    if traced:
        lines += [
            "",
            f"Python heap (tracemalloc) in the traced run: {traced['traced_start_mib']:.1f} → "
            f"{traced['traced_end_mib']:.1f} MiB ({traced['traced_growth_mib']:+.2f} MiB). "
            "Largest growth by line:",
            "",
            "| where | KiB | blocks |",
            "|---|---:|---:|",
            *(
                f"| {t['where']} | {t['size_diff_kib']:+.1f} | {t['count_diff']:+d} |"
                for t in traced["top_growth"]
            ),
        ]
    return [*lines, ""]


def render_companions(res: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    sweep = res.get("cpu_sweep")
    if sweep:
        lines += [
            "## CPU Triton configuration (`make cpu-sweep`)",
            "",
            f"From [CPU_SWEEP.md](CPU_SWEEP.md), measured {sweep['date_utc']} ({sweep['minutes']} min) with "
            f"NVIDIA perf_analyzer; medians of {sweep['results'][0]['rounds']} interleaved rounds. "
            f"Command: `{sweep['command']}`",
            "",
        ]
        for result in sweep["results"]:
            lines += sweep_table(result)
    rss = res.get("rss_probe")
    if rss:
        lines += [
            "## Gateway memory probe (`make rss-probe`)",
            "",
            f"From [RSS_PROBE.md](RSS_PROBE.md), measured {rss['date_utc']} ({rss['minutes']} min): "
            f"{rss['requests']} requests per mode after {rss['warmup']} warm-up, concurrency "
            f"{rss['concurrency']}, {rss['model']}. Command: `{rss['command']}`",
            "",
            *rss_table(rss),
        ]
    return lines


SCORER_BATCH_TEXT = "32 images, 4 in flight"


def write_report(res: dict[str, Any], out: Path, charts_dir: Path) -> None:
    charts = write_charts(res, charts_dir)
    out.write_text(render(res, charts, out))


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m benchmarks.report",
        description="Render BENCHMARKS.md again from a results.json.",
        epilog="example:\n"
        "  python -m benchmarks.report docs/benchmarks/results.json --out docs/benchmarks/BENCHMARKS.md",
    )
    parser.add_argument("results", type=Path, help="results.json written by python -m benchmarks.suite")
    parser.add_argument(
        "--out", type=Path, required=True, help="report to write (e.g. docs/benchmarks/BENCHMARKS.md)"
    )
    parser.add_argument(
        "--charts", type=Path, default=None, help="folder for the PNG charts (default: the report's folder)"
    )
    args = parser.parse_args(argv)
    if args.charts is None:
        args.charts = args.out.parent
    if not args.results.is_file():
        print(f"error: no results file at {args.results}", file=sys.stderr)
        return 2
    write_report(json.loads(args.results.read_text()), args.out, args.charts)
    print(f"report → {args.out}, charts → {args.charts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
