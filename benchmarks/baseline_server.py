"""The original design's server, rebuilt for side-by-side measurement (not for production).

FastAPI + PyTorch eager in the same process, one image per request, PIL decode and
torchvision preprocessing per request — the shape of the original design's inference app
(``src/inference/app.py``). It loads the same checkpoint the export uses, so the
comparison is weights-for-weights.

    python -m benchmarks.baseline_server --checkpoint artifacts/checkpoints/last.pt --port 8100
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Annotated

import torch
import uvicorn
from fastapi import FastAPI, File, HTTPException, UploadFile
from PIL import Image
from torchvision import transforms

from imaging.cli import ArgumentParser
from training.checkpoint import load_checkpoint


def create_app(checkpoint: Path) -> FastAPI:
    model, meta = load_checkpoint(checkpoint)
    network = model.network.eval()
    preprocess = transforms.Compose(
        [
            transforms.Resize((meta.image_size, meta.image_size)),
            transforms.ToTensor(),
            transforms.Normalize(meta.mean, meta.std),
        ]
    )
    app = FastAPI(title="baseline-design server")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "healthy"}

    @app.post("/predict")
    def predict(file: Annotated[UploadFile, File()]) -> dict[str, object]:
        start = time.perf_counter()
        try:
            image = Image.open(io.BytesIO(file.file.read())).convert("RGB")
        except Exception as exc:
            raise HTTPException(400, "invalid image") from exc
        with torch.no_grad():
            probs = torch.softmax(network(preprocess(image).unsqueeze(0)), dim=1)[0]
        label = int(probs.argmax())
        return {
            "predicted_class": meta.class_names[label],
            "predicted_label": label,
            "confidence": float(probs[label]),
            "probabilities": {name: float(p) for name, p in zip(meta.class_names, probs, strict=True)},
            "processing_time_ms": (time.perf_counter() - start) * 1000,
        }

    return app


def main() -> None:
    parser = ArgumentParser(
        prog="python -m benchmarks.baseline_server",
        description=__doc__.split("\n\n")[0],
        epilog="example:\n"
        "  python -m benchmarks.baseline_server --checkpoint artifacts/checkpoints/last.pt --port 8100",
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="training checkpoint (.pt)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address")
    parser.add_argument("--port", type=int, default=8100, help="port")
    args = parser.parse_args()
    uvicorn.run(create_app(args.checkpoint), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
