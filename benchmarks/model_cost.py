"""What a model costs to serve on this CPU: ORT img/s at batch 1 and 16, models measured side by side.

    python -m benchmarks.model_cost --checkpoint models/bundled/model.pt --architecture simple_cnn:112

Each checkpoint (and each untrained architecture at a size, for a model that is not at hand: speed does
not depend on the weights) is exported with the export package's own ``export_onnx`` and run through the
same ``session`` the promotion gate uses. Rounds are interleaved, medians reported: the machine is shared.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from imaging.cli import ArgumentParser


def _models(checkpoints: list[Path], architectures: list[str]) -> dict[str, tuple[object, int]]:
    from training.checkpoint import load_checkpoint
    from training.models import PetClassifier, get_model

    out: dict[str, tuple[object, int]] = {}
    for path in checkpoints:
        model, meta = load_checkpoint(path)
        out[f"{path} ({meta.model_name}, {meta.image_size} px)"] = (model, meta.image_size)
    for spec in architectures:
        name, _, size = spec.partition(":")
        out[f"{name} {size} px (untrained)"] = (PetClassifier(get_model(name)).eval(), int(size))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m benchmarks.model_cost",
        description=__doc__.split("\n\n")[0],
        epilog="example:\n  python -m benchmarks.model_cost --checkpoint models/bundled/model.pt "
        "--architecture simple_cnn:112",
    )
    parser.add_argument(
        "--checkpoint", type=Path, action="append", default=[], help="checkpoint (repeatable)"
    )
    parser.add_argument(
        "--architecture",
        action="append",
        default=[],
        metavar="NAME:SIZE",
        help="untrained model (repeatable)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians reported")
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per model, batch and round")
    args = parser.parse_args(argv)
    if not args.checkpoint and not args.architecture:
        parser.error("give at least one --checkpoint or --architecture")

    from export.onnx_export import export_onnx, session

    models = _models(args.checkpoint, args.architecture)
    sessions = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, (model, size)) in enumerate(models.items()):
            path = Path(tmp) / f"{i}.onnx"
            export_onnx(model, size, path)  # type: ignore[arg-type]
            sessions[name] = (session(path), size)
        rates: dict[str, dict[int, list[float]]] = {name: {1: [], 16: []} for name in sessions}
        for _ in range(args.rounds):
            for name, (sess, size) in sessions.items():
                feed = sess.get_inputs()[0].name
                for batch in (1, 16):
                    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
                    sess.run(None, {feed: images})
                    done, start = 0, time.perf_counter()
                    while time.perf_counter() - start < args.seconds:
                        sess.run(None, {feed: images})
                        done += batch
                    rates[name][batch].append(done / (time.perf_counter() - start))
    print("| model | img/s batch 1 | img/s batch 16 |\n|---|---:|---:|")
    for name, by_batch in rates.items():
        print(f"| {name} | {statistics.median(by_batch[1]):.0f} | {statistics.median(by_batch[16]):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
