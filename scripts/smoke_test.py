#!/usr/bin/env python3
"""Smoke test a running gateway: Health / Root / Metrics / Prediction → PASS/FAIL lines, exit code.

    python scripts/smoke_test.py --url http://127.0.0.1:8000 --wait [--image photo.jpg]

Standard library + Pillow only (to draw a test photo when none is given), so it runs anywhere.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


class CheckError(Exception):
    pass


def request(
    url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def get_json(url: str) -> tuple[int, Any]:
    status, body = request(url, headers={"Accept": "application/json"})
    try:
        return status, json.loads(body)
    except json.JSONDecodeError as exc:
        raise CheckError(f"{url} answered {status} with non-JSON content") from exc


def wait_ready(base: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            status, body = get_json(f"{base}/health/ready")
            if status == 200:
                return
            last = f"{status} {body}"
        except (OSError, CheckError) as exc:
            last = str(exc)
        time.sleep(1)
    raise CheckError(f"not ready after {timeout_s:.0f} s (last: {last})")


def sample_photo() -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (320, 240), (200, 170, 120))
    draw = ImageDraw.Draw(img)
    draw.ellipse((100, 50, 220, 190), fill=(90, 60, 40))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def check_health(base: str) -> str:
    status, body = get_json(f"{base}/health")
    if status != 200 or not body.get("ready"):
        raise CheckError(f"/health answered {status}: {body}")
    model = body.get("model") or {}
    return f"model {model.get('name')} version {model.get('version')}, Triton {body['triton']['url']}"


def check_root(base: str) -> str:
    status, body = get_json(f"{base}/")
    if status != 200 or "endpoints" not in body:
        raise CheckError(f"/ answered {status}: {body}")
    status, page = request(f"{base}/", headers={"Accept": "text/html"})
    if status != 200 or b'type="file"' not in page:
        raise CheckError(f"/ with Accept: text/html answered {status} without an upload form")
    return f"{len(body['endpoints'])} endpoints listed, upload page served"


def check_prediction(base: str, image: bytes, filename: str) -> str:
    payload, content_type = multipart("file", filename, image)
    status, raw = request(f"{base}/predict", data=payload, headers={"Content-Type": content_type})
    body = json.loads(raw)
    if status != 200:
        raise CheckError(f"/predict answered {status}: {body}")
    expected = {"predicted_class", "predicted_label", "confidence", "probabilities", "processing_time_ms"}
    missing = expected - set(body)
    if missing:
        raise CheckError(f"/predict response lacks {sorted(missing)}")
    if body["predicted_class"] not in body["probabilities"]:
        raise CheckError(
            f"predicted class {body['predicted_class']!r} not among {list(body['probabilities'])}"
        )
    if abs(sum(body["probabilities"].values()) - 1.0) > 1e-3:
        raise CheckError(f"probabilities do not sum to 1: {body['probabilities']}")
    return (
        f"{body['predicted_class']} ({body['confidence']:.3f}) in {body['processing_time_ms']} ms, "
        f"model version {body.get('model_version')}"
    )


def check_metrics(base: str) -> str:
    status, raw = request(f"{base}/metrics")
    text = raw.decode(errors="replace")
    names = ["prediction_requests_total", "prediction_latency_seconds", "health_check_requests_total"]
    missing = [n for n in names if n not in text]
    if status != 200 or missing:
        raise CheckError(f"/metrics answered {status}, missing {missing}")
    return f"{len(text.splitlines())} lines, {', '.join(names)} present"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="gateway base URL")
    parser.add_argument("--wait", action="store_true", help="wait for /health/ready before checking")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds --wait waits")
    parser.add_argument("--image", type=Path, help="photo to classify (default: a drawn test image)")
    args = parser.parse_args(argv)
    base = args.url.rstrip("/")
    if args.image is not None and not args.image.is_file():
        print(f"error: --image {args.image} not found", file=sys.stderr)
        return 2
    if args.wait:
        try:
            wait_ready(base, args.timeout)
        except CheckError as exc:
            print(f"FAIL  Ready       {exc}")
            return 1
    image = args.image.read_bytes() if args.image else sample_photo()
    filename = args.image.name if args.image else "smoke.jpg"
    checks: list[tuple[str, Callable[[], str]]] = [
        ("Health", lambda: check_health(base)),
        ("Root", lambda: check_root(base)),
        ("Prediction", lambda: check_prediction(base, image, filename)),
        ("Metrics", lambda: check_metrics(base)),
    ]
    failed = 0
    for name, check in checks:
        try:
            print(f"PASS  {name:<11} {check()}")
        except (CheckError, OSError, ValueError, KeyError) as exc:
            failed += 1
            print(f"FAIL  {name:<11} {exc}")
    print(f"{len(checks) - failed}/{len(checks)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
