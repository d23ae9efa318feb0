"""The prediction log: one schema and one interface over SQLite (one machine) or PostgreSQL (replicas).

``open_store(location)``: a path → :class:`SqliteStore` (WAL, ``synchronous=FULL``); a
``postgresql://`` URL → :class:`PostgresStore` (psycopg 3 with its connection pool), shared by
every gateway replica so feedback reaches the prediction whichever replica answered it.

Same semantics on both: every write is its own transaction and a call returns only after its
COMMIT, so the gateway acknowledges feedback only once it is durable; a conflicting label is
refused inside the transaction that reads the row (SQLite's write lock, PostgreSQL's row lock).
``record_many`` commits a group of prediction rows in one transaction (the gateway's group
commit, tracking/batch_writer.py).
``ts`` is Unix seconds (float) on both, so windows and retention mean the same.

``client_request_id`` holds the caller's X-Request-ID (correlation only); the row key is server-generated.
"""

from __future__ import annotations

import abc
import itertools
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tracking.stats import WindowColumns

# (name, SQLite type, PostgreSQL type, constraint): the single definition both dialects use.
COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("id", "TEXT", "TEXT", "PRIMARY KEY"),
    ("ts", "REAL", "DOUBLE PRECISION", "NOT NULL"),
    ("model_version", "TEXT", "TEXT", ""),
    ("predicted_class", "TEXT", "TEXT", "NOT NULL"),
    ("confidence", "REAL", "DOUBLE PRECISION", "NOT NULL"),
    ("latency_ms", "REAL", "DOUBLE PRECISION", "NOT NULL"),
    ("image_sha256", "TEXT", "TEXT", ""),
    ("image_bytes", "INTEGER", "BIGINT", ""),
    ("image_width", "INTEGER", "INTEGER", ""),
    ("image_height", "INTEGER", "INTEGER", ""),
    ("brightness", "REAL", "DOUBLE PRECISION", ""),
    ("true_label", "TEXT", "TEXT", ""),
    ("labelled_at", "REAL", "DOUBLE PRECISION", ""),
    ("client_request_id", "TEXT", "TEXT", ""),
)
_NAMES = tuple(c[0] for c in COLUMNS)


def schema(dialect: str) -> list[str]:
    """CREATE statements for ``sqlite`` or ``postgresql`` (idempotent)."""
    index = 1 if dialect == "sqlite" else 2
    columns = ",\n    ".join(f"{c[0]} {c[index]} {c[3]}".rstrip() for c in COLUMNS)
    return [
        f"CREATE TABLE IF NOT EXISTS predictions (\n    {columns}\n)",
        "CREATE INDEX IF NOT EXISTS predictions_ts ON predictions (ts)",
    ]


# The SQLite form, as one script (for readers and the sqlite3 shell).
SCHEMA = ";\n".join(schema("sqlite")) + ";\n"


class UnknownPredictionError(KeyError):
    pass


class ConflictingLabelError(ValueError):
    def __init__(self, existing: str) -> None:
        super().__init__(f"already labelled {existing!r}")
        self.existing = existing


class StoreUnavailableError(RuntimeError):
    """The database cannot be reached (PostgreSQL down, pool exhausted past its timeout)."""


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

    def values(self) -> tuple[Any, ...]:
        now = time.time()
        by_name: dict[str, Any] = {
            **{name: getattr(self, name) for name in _NAMES if hasattr(self, name)},
            "ts": self.ts if self.ts is not None else now,
            "labelled_at": now if self.true_label is not None else None,
        }
        return tuple(by_name[name] for name in _NAMES)


class PredictionStore(abc.ABC):
    """The interface both backends implement; SQL is written once with ``?`` placeholders."""

    placeholder = "?"

    @abc.abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]:
        """A connection inside one transaction: COMMIT on exit, ROLLBACK on an exception."""

    @abc.abstractmethod
    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query, as dicts."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    _INSERT = f"INSERT INTO predictions ({', '.join(_NAMES)}) VALUES ({', '.join('?' for _ in _NAMES)})"

    def insert(self, record: PredictionRecord) -> None:
        with self._transaction() as tx:
            tx.execute(self._sql(self._INSERT), record.values())

    def record_many(self, records: Sequence[PredictionRecord]) -> None:
        """Insert ``records`` in one transaction (group commit): all of them or, on an error, none."""
        if not records:
            return
        with self._transaction() as tx:
            tx.cursor().executemany(self._sql(self._INSERT), [record.values() for record in records])

    def add_feedback(self, prediction_id: str, true_label: str) -> bool:
        """Record the true label; True if newly stored, False if the same label was already there.

        Returns after COMMIT. The row is read under the transaction's write/row lock, so two
        replicas labelling one prediction at once cannot both succeed with different labels.
        """
        with self._transaction() as tx:
            row = tx.execute(
                self._sql("SELECT true_label FROM predictions WHERE id = ?" + self._for_update),
                (prediction_id,),
            ).fetchone()
            if row is None:
                raise UnknownPredictionError(prediction_id)
            existing = row["true_label"]
            if existing is not None:
                if existing != true_label:
                    raise ConflictingLabelError(existing)
                return False
            tx.execute(
                self._sql("UPDATE predictions SET true_label = ?, labelled_at = ? WHERE id = ?"),
                (true_label, time.time(), prediction_id),
            )
            return True

    _for_update = ""

    def get(self, prediction_id: str) -> dict[str, Any] | None:
        rows = self._query(self._sql("SELECT * FROM predictions WHERE id = ?"), (prediction_id,))
        return rows[0] if rows else None

    def rows_since(self, since_ts: float | None) -> list[dict[str, Any]]:
        if since_ts is None:
            return self._query("SELECT * FROM predictions ORDER BY ts")
        return self._query(self._sql("SELECT * FROM predictions WHERE ts >= ? ORDER BY ts"), (since_ts,))

    @abc.abstractmethod
    def _scan(self, sql: str, params: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        """Rows of a read-only query as plain tuples, one at a time (never all as Python objects)."""

    def window_columns(self, since_ts: float | None) -> WindowColumns:
        """The statistics' inputs for rows with ``ts >= since_ts`` (all when None), streamed."""
        where, params = ("WHERE ts >= ?", (since_ts,)) if since_ts is not None else ("", ())
        counts = {
            str(row["predicted_class"]): int(row["n"])
            for row in self._query(
                self._sql(
                    f"SELECT predicted_class, COUNT(*) AS n FROM predictions {where} GROUP BY predicted_class"
                ),
                params,
            )
        }
        values = np.fromiter(
            itertools.chain.from_iterable(
                self._scan(self._sql(f"SELECT latency_ms, confidence FROM predictions {where}"), params)
            ),
            dtype=np.float64,
        ).reshape(-1, 2)
        labelled_where = f"{where} AND" if where else "WHERE"
        labelled = [
            (str(row["true_label"]), str(row["predicted_class"]))
            for row in self._query(
                self._sql(
                    "SELECT true_label, predicted_class FROM predictions "
                    f"{labelled_where} true_label IS NOT NULL"
                ),
                params,
            )
        ]
        return WindowColumns(
            class_counts=counts,
            latency_ms=values[:, 0].copy(),
            confidence=values[:, 1].copy(),
            labelled=labelled,
        )

    def predicted_classes(self) -> tuple[str, ...]:
        rows = self._query("SELECT DISTINCT predicted_class FROM predictions")
        return tuple(sorted(str(row["predicted_class"]) for row in rows))

    def count(self) -> int:
        return int(self._query("SELECT COUNT(*) AS n FROM predictions")[0]["n"])

    def apply_retention(self, *, max_age_s: float | None, max_rows: int | None) -> int:
        """Delete rows older than ``max_age_s`` and beyond the newest ``max_rows``; returns how many."""
        deleted = 0
        with self._transaction() as tx:
            if max_age_s is not None:
                deleted += tx.execute(
                    self._sql("DELETE FROM predictions WHERE ts < ?"), (time.time() - max_age_s,)
                ).rowcount
            if max_rows is not None:
                deleted += tx.execute(
                    self._sql(
                        "DELETE FROM predictions WHERE id IN ("
                        f" SELECT id FROM predictions ORDER BY ts DESC {self._all_rows} OFFSET ?)"
                    ),
                    (max_rows,),
                ).rowcount
        if deleted:
            self._compact()
        return deleted

    _all_rows = "LIMIT -1"  # SQLite needs a LIMIT before OFFSET; PostgreSQL takes OFFSET alone

    @abc.abstractmethod
    def _compact(self) -> None:
        """Give the space of deleted rows back."""


class SqliteStore(PredictionStore):
    """SQLite in WAL mode: safe with several gateway worker processes on one machine."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()  # sqlite3 connections must stay on their thread
        conn = self._connection()
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
            # Incremental auto-vacuum lets retention give pages back without a full VACUUM.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("VACUUM")
        for statement in schema("sqlite"):
            conn.execute(statement)
        present = {row[1] for row in conn.execute("PRAGMA table_info(predictions)")}
        for name, sqlite_type, _, _ in COLUMNS:
            if name not in present:  # a log written before the column existed
                conn.execute(f"ALTER TABLE predictions ADD COLUMN {name} {sqlite_type}")

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
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")  # take the write lock up front: no upgrade deadlocks
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self._connection().execute(sql, params).fetchall()]

    def _scan(self, sql: str, params: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        cursor = self._connection().execute(sql, params)
        try:
            yield from (tuple(row) for row in cursor)
        finally:
            cursor.close()

    def _compact(self) -> None:
        conn = self._connection()
        conn.execute("PRAGMA incremental_vacuum")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class PostgresStore(PredictionStore):
    """PostgreSQL through psycopg 3's connection pool: the log every replica shares.

    Commits wait for the WAL flush (``synchronous_commit`` stays on), so an acknowledged label
    survives a crash of the gateway or of the database server.
    """

    placeholder = "%s"
    _for_update = " FOR UPDATE"
    _all_rows = ""

    def __init__(self, url: str, *, pool_size: int = 4, timeout_s: float = 10.0) -> None:
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            timeout=timeout_s,
            kwargs={"row_factory": dict_row, "connect_timeout": max(1, int(timeout_s))},
            # A connection the server dropped (restart, failover) is replaced, not handed out.
            check=ConnectionPool.check_connection,
            open=False,
            name="prediction-log",
        )
        try:
            self._pool.open(wait=True, timeout=timeout_s)
        except Exception as exc:
            self._pool.close()
            raise StoreUnavailableError(f"PostgreSQL not reachable: {type(exc).__name__}") from exc
        with self._transaction() as tx:
            # Two replicas starting together must not race on CREATE: one lock orders them.
            tx.execute("SELECT pg_advisory_xact_lock(7283164)")
            present = {
                row["column_name"]
                for row in tx.execute(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = current_schema() AND table_name = 'predictions'"
                ).fetchall()
            }
            # DDL only when something is missing: its table locks would stall (or deadlock
            # with) replicas already writing.
            if not present:
                for statement in schema("postgresql"):
                    tx.execute(statement)
            for name, _, pg_type, _ in COLUMNS:
                if present and name not in present:  # a log created before the column existed
                    tx.execute(f"ALTER TABLE predictions ADD COLUMN {name} {pg_type}")

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        import psycopg
        import psycopg_pool

        try:
            with self._pool.connection() as conn, conn.transaction():
                yield conn
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            raise StoreUnavailableError(f"prediction log unavailable: {type(exc).__name__}") from exc

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._transaction() as conn:
            rows: list[dict[str, Any]] = conn.execute(sql, params).fetchall()
        return rows

    def _scan(self, sql: str, params: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        from psycopg.rows import tuple_row

        with self._transaction() as conn, conn.cursor(row_factory=tuple_row) as cursor:
            cursor.execute(sql, params)
            yield from cursor

    def _compact(self) -> None:
        """Nothing to do: PostgreSQL's autovacuum reclaims deleted rows by itself."""

    def close(self) -> None:
        self._pool.close()


def open_store(location: Path | str, *, pool_size: int = 4) -> PredictionStore:
    """A ``postgresql://`` URL → PostgreSQL; anything else is a SQLite file path."""
    text = str(location)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresStore(text, pool_size=pool_size)
    return SqliteStore(Path(location))
