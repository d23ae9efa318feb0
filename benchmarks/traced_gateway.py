"""``python -m gateway`` with tracemalloc on: SIGUSR1 writes a snapshot (for benchmarks/rss_probe.py).

The snapshot goes to ``$TRACEMALLOC_SNAPSHOT_DIR/snapshot-<n>.pickle``, then ``<n>.done`` is
written so the reader never opens a half-written file. Only the memory probe runs this: the
traced gateway is several times slower and its own bookkeeping costs memory.
"""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

FRAMES = 12  # deep enough to see which request path allocated, not only the C-extension wrapper


def _dump(_signum: int, _frame: FrameType | None) -> None:
    folder = Path(os.environ["TRACEMALLOC_SNAPSHOT_DIR"])
    n = len(list(folder.glob("snapshot-*.pickle")))
    tracemalloc.take_snapshot().dump(str(folder / f"snapshot-{n}.pickle"))
    (folder / f"{n}.done").write_text(str(tracemalloc.get_traced_memory()[0]))


def main() -> int:
    tracemalloc.start(FRAMES)
    signal.signal(signal.SIGUSR1, _dump)
    from gateway.__main__ import main as gateway_main

    return gateway_main([])


if __name__ == "__main__":
    sys.exit(main())
