"""The memory probe's reading of tracemalloc snapshots (``make rss-probe``).

The probe itself drives a real gateway for tens of thousands of requests per mode; it is run by
``make rss-probe`` and recorded in docs/benchmarks/RSS_PROBE.md, not in the test suite.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from benchmarks.rss_probe import _traced_growth


def _grow(blocks: list[bytes]) -> None:
    blocks.extend(bytes(4096) for _ in range(256))  # the line the probe must name


def test_traced_growth_names_the_line_that_grew(tmp_path: Path) -> None:
    blocks: list[bytes] = []
    tracemalloc.start(4)
    try:
        tracemalloc.take_snapshot().dump(str(tmp_path / "snapshot-0.pickle"))
        first = tracemalloc.get_traced_memory()[0]
        _grow(blocks)
        tracemalloc.take_snapshot().dump(str(tmp_path / "snapshot-1.pickle"))
        last = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()

    growth = _traced_growth(tmp_path, [{"traced": first}, {"traced": last}])

    top = growth["top_growth"][0]
    assert top["where"].endswith(f"test_rss_probe.py:{_grow.__code__.co_firstlineno + 1}")
    assert top["size_diff_kib"] >= 1000
    assert growth["traced_growth_mib"] >= 1.0
