"""Response cache: identical image bytes within a TTL get the same answer without decode or inference.

Bounded by entry count (LRU), keyed by the sha256 of the upload, and emptied when the served
model version changes, so a cached answer always comes from the model that is serving now.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any


class ResponseCache:
    def __init__(
        self, *, ttl_s: float = 300.0, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._model_version: str | None = None
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0 and self.max_entries > 0

    def get(self, sha256: str, model_version: str) -> dict[str, Any] | None:
        with self._lock:
            self._follow_version(model_version)
            entry = self._entries.get(sha256)
            if entry is None or self._clock() - entry[0] > self.ttl_s:
                if entry is not None:
                    del self._entries[sha256]
                self.misses += 1
                return None
            self._entries.move_to_end(sha256)
            self.hits += 1
            return dict(entry[1])

    def put(self, sha256: str, model_version: str, response: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._follow_version(model_version)
            self._entries[sha256] = (self._clock(), dict(response))
            self._entries.move_to_end(sha256)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def _follow_version(self, model_version: str) -> None:
        if model_version != self._model_version:
            self._entries.clear()
            self._model_version = model_version

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
