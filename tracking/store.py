"""SQLite prediction log in WAL mode: safe with several gateway worker processes.

Every write is its own transaction with ``synchronous=FULL``, so a call that returned has
reached the disk: the gateway acknowledges feedback only after that.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    id              TEXT PRIMARY KEY,
    ts              REAL NOT NULL,
    model_version   TEXT,
    predicted_class TEXT NOT NULL,
    confidence      REAL NOT NULL,
    latency_ms      REAL NOT NULL,
    image_sha256    TEXT,
    image_bytes     INTEGER,
    image_width     INTEGER,
    image_height    INTEGER,
    brightness      REAL,
    true_label      TEXT,
    labelled_at     REAL,
    client_request_id TEXT
);
CREATE INDEX IF NOT EXISTS predictions_ts ON predictions (ts);
"""
# Columns added after the first release, for logs created before them: (name, SQL type).
_ADDED_COLUMNS = (("client_request_id", "TEXT"),)


class UnknownPredictionError(KeyError):
    pass


class ConflictingLabelError(ValueError):
    def __init__(self, existing: str) -> None:
        super().__init__(f"already labelled {existing!r}")
        self.existing = existing


@dataclass(frozen=True, kw_only=True)
class PredictionRecord:
    id: str
    predicted_class: str
    confidence: float
    latency_ms: float
    ts: float | None = None
    model_version: str | None = None
    image_sha256: str | None = None
    image_bytes: int | None = None
    image_width: int | None = None
    image_height: int | None = None
    brightness: float | None = None
    true_label: str | None = None
    client_request_id: str | None = None  # the caller's X-Request-ID: correlation only, never a key


class PredictionStore:
    def __init__(self, path: Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()  # sqlite3 connections must stay on their thread
        with self._connect() as conn:
            if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                # Incremental auto-vacuum lets retention give pages back without a full VACUUM.
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                conn.execute("VACUUM")
            conn.executescript(SCHEMA)
            present = {row[1] for row in conn.execute("PRAGMA table_info(predictions)")}
            for name, sql_type in _ADDED_COLUMNS:
                if name not in present:
                    conn.execute(f"ALTER TABLE predictions ADD COLUMN {name} {sql_type}")

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        yield self._connection()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")  # take the write lock up front: no upgrade deadlocks
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def insert(self, record: PredictionRecord) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO predictions (id, ts, model_version, predicted_class, confidence, latency_ms,"
                " image_sha256, image_bytes, image_width, image_height, brightness, true_label, labelled_at,"
                " client_request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.ts if record.ts is not None else time.time(),
                    record.model_version,
                    record.predicted_class,
                    record.confidence,
                    record.latency_ms,
                    record.image_sha256,
                    record.image_bytes,
                    record.image_width,
                    record.image_height,
                    record.brightness,
                    record.true_label,
                    time.time() if record.true_label is not None else None,
                    record.client_request_id,
                ),
            )

    def add_feedback(self, prediction_id: str, true_label: str) -> bool:
        """Record the true label; True if newly stored, False if the same label was already there."""
        with self._transaction() as conn:
            row = conn.execute("SELECT true_label FROM predictions WHERE id = ?", (prediction_id,)).fetchone()
            if row is None:
                raise UnknownPredictionError(prediction_id)
            if row["true_label"] is not None:
                if row["true_label"] != true_label:
                    raise ConflictingLabelError(row["true_label"])
                return False
            conn.execute(
                "UPDATE predictions SET true_label = ?, labelled_at = ? WHERE id = ?",
                (true_label, time.time(), prediction_id),
            )
            return True

    def get(self, prediction_id: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = (
            self._connection().execute("SELECT * FROM predictions WHERE id = ?", (prediction_id,)).fetchone()
        )
        return row

    def rows_since(self, since_ts: float | None) -> list[dict[str, Any]]:
        conn = self._connection()
        if since_ts is None:
            rows = conn.execute("SELECT * FROM predictions ORDER BY ts").fetchall()
        else:
            rows = conn.execute("SELECT * FROM predictions WHERE ts >= ? ORDER BY ts", (since_ts,)).fetchall()
        return [dict(row) for row in rows]

    def predicted_classes(self) -> tuple[str, ...]:
        rows = self._connection().execute("SELECT DISTINCT predicted_class FROM predictions").fetchall()
        return tuple(sorted(row[0] for row in rows))

    def count(self) -> int:
        return int(self._connection().execute("SELECT COUNT(*) FROM predictions").fetchone()[0])

    def apply_retention(self, *, max_age_s: float | None, max_rows: int | None) -> int:
        """Delete rows older than ``max_age_s`` and beyond the newest ``max_rows``; returns how many."""
        deleted = 0
        with self._transaction() as conn:
            if max_age_s is not None:
                deleted += conn.execute(
                    "DELETE FROM predictions WHERE ts < ?", (time.time() - max_age_s,)
                ).rowcount
            if max_rows is not None:
                deleted += conn.execute(
                    "DELETE FROM predictions WHERE id IN ("
                    " SELECT id FROM predictions ORDER BY ts DESC LIMIT -1 OFFSET ?)",
                    (max_rows,),
                ).rowcount
        if deleted:
            conn = self._connection()
            conn.execute("PRAGMA incremental_vacuum")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
