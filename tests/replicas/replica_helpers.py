"""Bounded load against the topology, with every outcome counted (imported by module name)."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from tests.support.photos import photo

PHOTOS = [photo(7000 + i, size=(160, 120)) for i in range(16)]


@dataclass
class LoadResult:
    """What the clients saw. ``acked``: request_id → label for feedback answered 200/201."""

    statuses: Counter[str] = field(default_factory=Counter)  # "predict 200", "feedback 201", …
    exceptions: Counter[str] = field(default_factory=Counter)  # no HTTP answer at all
    acked: dict[str, str] = field(default_factory=dict)
    failures: list[tuple[float, str]] = field(default_factory=list)  # (time, what) of non-2xx/exceptions
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + sum(self.exceptions.values())

    @property
    def answered_ok(self) -> int:
        return sum(n for key, n in self.statuses.items() if key.split()[1].startswith("2"))

    @property
    def failed(self) -> int:
        return self.sent - self.answered_ok

    def record(self, what: str, outcome: str, ok: bool) -> None:
        with self.lock:
            if outcome.isdigit():
                self.statuses[f"{what} {outcome}"] += 1
            else:
                self.exceptions[f"{what} {outcome}"] += 1
            if not ok:
                self.failures.append((time.time(), f"{what} {outcome}"))

    def summary(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "answered_2xx": self.answered_ok,
            "failed": self.failed,
            "statuses": dict(sorted(self.statuses.items())),
            "exceptions": dict(self.exceptions),
            "feedback_acknowledged": len(self.acked),
        }


class Load:
    """``clients`` threads looping /predict (+ /feedback on the answer) until stopped, ``seconds``
    or ``requests``."""

    def __init__(
        self,
        url: str,
        *,
        clients: int = 4,
        seconds: float = 30.0,
        feedback: bool = True,
        requests: int | None = None,
    ) -> None:
        self.url = url
        self.requests = requests  # stop after this many /predict calls in all (None: by time only)
        self.clients = clients
        self.seconds = seconds
        self.feedback = feedback
        self.result = LoadResult()
        self._stop = threading.Event()
        self._counter = itertools.count()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self) -> LoadResult:
        """Until every client is done (``requests`` sent or ``seconds`` passed)."""
        for thread in self._threads:
            thread.join(self.seconds + 60)
        return self.result

    def stop(self) -> LoadResult:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        return self.result

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                n = next(self._counter)
                if self.requests is not None and n >= self.requests:
                    break
                request_id = self._predict(client, n)
                if request_id is not None and self.feedback:
                    self._label(client, request_id, ("cat", "dog")[n % 2])

    def _predict(self, client: httpx.Client, n: int) -> str | None:
        try:
            response = client.post(
                "/predict", files={"file": (f"{n}.jpg", PHOTOS[n % len(PHOTOS)], "image/jpeg")}
            )
        except httpx.HTTPError as exc:
            self.result.record("predict", type(exc).__name__, ok=False)
            return None
        ok = response.status_code == 200
        self.result.record("predict", str(response.status_code), ok=ok)
        return str(response.json()["request_id"]) if ok else None

    def _label(self, client: httpx.Client, request_id: str, label: str) -> None:
        try:
            response = client.post("/feedback", json={"request_id": request_id, "true_label": label})
        except httpx.HTTPError as exc:
            self.result.record("feedback", type(exc).__name__, ok=False)
            return
        ok = response.status_code in (200, 201)
        self.result.record("feedback", str(response.status_code), ok=ok)
        if ok:
            with self.result.lock:
                self.result.acked[request_id] = label


def labels_in_database(database_url: str, ids: list[str]) -> dict[str, str | None]:
    """The stored true_label of each id, read straight from PostgreSQL (not through a gateway)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT id, true_label FROM predictions WHERE id = ANY(%s)", (ids,)).fetchall()
    return {str(row[0]): row[1] for row in rows}
