"""An ordered ``map`` over a process pool with a progress bar, shared by the data steps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")

# Below this many items a process pool costs more to start than it saves.
POOL_THRESHOLD = 64


def parallel_map(
    fn: Callable[[T], R], items: list[T], *, workers: int, desc: str, progress: bool = True, unit: str = "img"
) -> Iterator[R]:
    """``map(fn, items)`` in order, over ``workers`` processes (in-process for small inputs)."""
    bar = {"total": len(items), "desc": desc, "unit": unit, "disable": not progress, "mininterval": 0.5}
    if workers <= 1 or len(items) < POOL_THRESHOLD:
        yield from tqdm((fn(item) for item in items), **bar)
        return
    # Small chunks keep the bar moving and the two cores balanced; large ones cut IPC overhead.
    chunksize = max(1, min(64, len(items) // (workers * 8)))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from tqdm(pool.map(fn, items, chunksize=chunksize), **bar)
