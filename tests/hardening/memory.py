"""Peak-RSS sampling of a process while something runs: bounded memory is a claim about the peak."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil


@dataclass
class RssWindow:
    before: int = 0
    peak: int = 0
    after: int = 0

    @property
    def growth(self) -> int:
        return self.peak - self.before

    def describe(self) -> str:
        mib = 1024 * 1024
        before, peak, after = (value / mib for value in (self.before, self.peak, self.after))
        return f"RSS before {before:.1f} MiB, peak {peak:.1f} MiB, after {after:.1f} MiB"


@contextmanager
def sampled_rss(pid: int, interval_s: float = 0.005) -> Iterator[RssWindow]:
    process = psutil.Process(pid)
    window = RssWindow(before=process.memory_info().rss)
    window.peak = window.before
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            window.peak = max(window.peak, process.memory_info().rss)
            stop.wait(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield window
    finally:
        stop.set()
        sampler.join()
        window.after = process.memory_info().rss
        window.peak = max(window.peak, window.after)
