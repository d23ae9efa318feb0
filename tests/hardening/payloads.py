"""Hostile payloads of issue 19, built here (nothing downloaded): CPU-bomb JPEGs and huge request heads."""

from __future__ import annotations

import io
from collections.abc import Iterator

from PIL import Image


def _progressive(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (120, 80, 60)).save(buf, "JPEG", progressive=True, quality=50)
    return buf.getvalue()


def _scan_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every SOS segment with its entropy-coded data."""
    spans, i = [], 2
    while i < len(data) and data[i + 1] != 0xD9:
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if data[i + 1] != 0xDA:
            i += 2 + length
            continue
        j = i + 2 + length
        while True:  # entropy data ends at the first marker that is not a stuffed FF00 or a restart
            j = data.index(b"\xff", j)
            if data[j + 1] == 0 or 0xD0 <= data[j + 1] <= 0xD7:
                j += 2
                continue
            break
        spans.append((i, j))
        i = j
    return spans


def scan_bomb(width: int, height: int, extra_scans: int) -> bytes:
    """A progressive JPEG whose last (refinement) scan is repeated ``extra_scans`` times.

    libjpeg only warns about the bogus progression and decodes every repeat over every block: at
    2000x2000, 500 repeats cost ~5 s of CPU in ~31 KB. Pillow itself opens it like any photo.
    """
    data = _progressive(width, height)
    start, end = _scan_spans(data)[-1]
    return data[:end] + data[start:end] * extra_scans + data[end:]


def huge_head(total_bytes: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    """A request head of ``total_bytes`` header lines, streamed in chunks (never held whole)."""
    yield b"GET /health/live HTTP/1.1\r\nHost: x\r\n"
    line = b"X-Pad: " + b"v" * 1000 + b"\r\n"
    block = line * max(chunk // len(line), 1)
    sent = 0
    while sent < total_bytes:
        yield block
        sent += len(block)
    yield b"\r\n"
