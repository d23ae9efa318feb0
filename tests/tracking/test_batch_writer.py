"""The group-commit writer (tracking/batch_writer.py) on a real SQLite file and a real PostgreSQL.

Rows are committed many per transaction, only after the flush interval (or a flush / close), all of
them on close; a full queue drops and counts; a row the database refuses is dropped alone. The
outage tests cut a real PostgreSQL's connection, or use a store that fails on purpose in front of
the real one (error handling only).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from tracking.batch_writer import BatchWriter
from tracking.store import (
    PostgresStore,
    PredictionRecord,
    PredictionStore,
    StoreUnavailableError,
    open_store,
)


def _row(i: int) -> PredictionRecord:
    return PredictionRecord(id=f"r{i}", predicted_class="cat", confidence=0.9, latency_ms=1.0, ts=time.time())


@pytest.fixture
def store(log_location: str) -> PredictionStore:
    return open_store(log_location)


def test_concurrent_rows_are_committed_in_groups_and_all_arrive(store: PredictionStore) -> None:
    writer = BatchWriter(store, flush_interval_s=0.05, max_pending=10_000)
    threads = [
        threading.Thread(target=lambda t=t: [writer.submit(_row(t * 100 + i)) for i in range(100)])
        for t in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.flush(10)
    assert store.count() == 400
    assert writer.committed_rows == 400
    # One transaction per flush interval, not one per row.
    assert 1 <= writer.commits <= 40, writer.commits
    assert writer.pending == 0 and not writer.dropped
    writer.close()


def test_a_row_waits_for_its_interval_and_flush_commits_it_now(store: PredictionStore) -> None:
    writer = BatchWriter(store, flush_interval_s=30.0, max_pending=100)
    assert writer.submit(_row(1))
    time.sleep(0.2)
    assert store.get("r1") is None and writer.holds("r1") and writer.pending == 1
    started = time.monotonic()
    writer.flush(10)
    assert time.monotonic() - started < 5, "flush must not wait for the interval"
    assert store.get("r1") is not None and not writer.holds("r1") and writer.pending == 0
    writer.close()


def test_close_commits_every_queued_row(store: PredictionStore, log_location: str) -> None:
    writer = BatchWriter(store, flush_interval_s=30.0, max_pending=1000)
    for i in range(250):
        assert writer.submit(_row(i))
    assert store.count() == 0
    assert writer.close(timeout_s=10) == 0
    assert open_store(log_location).count() == 250
    assert not writer.submit(_row(999)) and writer.dropped["closed"] == 1


def test_a_full_queue_drops_new_rows_and_counts_them(store: PredictionStore) -> None:
    writer = BatchWriter(store, flush_interval_s=30.0, max_pending=5)
    accepted = [writer.submit(_row(i)) for i in range(8)]
    assert accepted == [True] * 5 + [False] * 3
    assert writer.dropped["queue_full"] == 3
    writer.flush(10)
    assert store.count() == 5 and store.get("r5") is None
    assert writer.submit(_row(5))  # room again once committed
    writer.close()


def test_a_refused_row_is_dropped_alone(store: PredictionStore) -> None:
    store.insert(_row(3))  # r3 again violates the primary key
    writer = BatchWriter(store, flush_interval_s=30.0, max_pending=100)
    for i in range(6):
        writer.submit(_row(i))
    writer.flush(10)
    assert writer.dropped["rejected"] == 1
    assert {row["id"] for row in store.rows_since(None)} == {f"r{i}" for i in range(6)}
    assert writer.committed_rows == 5
    writer.close()


class _Outage(PredictionStore):
    """The real store behind a switch: while ``down``, commits fail as an unreachable database does."""

    def __init__(self, real: PredictionStore) -> None:
        self.real = real
        self.down = True
        self.attempts = 0

    def record_many(self, records: Sequence[PredictionRecord]) -> None:
        self.attempts += 1
        if self.down:
            raise StoreUnavailableError("prediction log unavailable: OperationalError")
        self.real.record_many(records)

    def _transaction(self):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def _query(self, sql, params=()):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def _scan(self, sql, params=()):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def _compact(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.real.close()


def test_an_outage_keeps_rows_in_order_and_writes_them_when_the_database_is_back(
    store: PredictionStore,
) -> None:
    outage = _Outage(store)
    writer = BatchWriter(outage, flush_interval_s=0.001, max_pending=10)
    for i in range(15):
        writer.submit(_row(i))
    deadline = time.monotonic() + 10
    while outage.attempts < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.failures >= 3 and writer.pending == 10 and writer.dropped["queue_full"] == 5
    outage.down = False
    writer.flush(10)
    assert [row["id"] for row in store.rows_since(None)] == [f"r{i}" for i in range(10)]
    writer.close()


def test_close_with_the_database_down_gives_up_after_its_timeout(store: PredictionStore) -> None:
    writer = BatchWriter(_Outage(store), flush_interval_s=30.0, max_pending=100)
    for i in range(7):
        writer.submit(_row(i))
    started = time.monotonic()
    assert writer.close(timeout_s=0.5) == 7
    assert time.monotonic() - started < 5
    assert writer.dropped["shutdown"] == 7 and writer.pending == 0


class _Link:
    """A TCP relay to PostgreSQL that can be cut (every connection reset, new ones refused) and restored."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self.sockets = []

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_a_real_postgresql_outage_is_retried_and_no_row_is_lost(postgres: Any) -> None:
    url = postgres.create_database("outage")
    link = _Link(postgres.port)
    store = PostgresStore(url.replace(f":{postgres.port}/", f":{link.port}/"), pool_size=2, timeout_s=1.0)
    writer = BatchWriter(store, flush_interval_s=0.005, max_pending=100)
    try:
        writer.submit(_row(0))
        writer.flush(10)
        link.cut()
        for i in range(1, 21):
            assert writer.submit(_row(i))  # never blocks, whatever the database does
        deadline = time.monotonic() + 30
        while writer.failures < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writer.failures >= 2 and writer.pending == 20 and not writer.dropped
        link.up = True
        writer.flush(60)
        assert open_store(url).count() == 21 and writer.committed_rows == 21
    finally:
        writer.close()
        store.close()
        link.close()
