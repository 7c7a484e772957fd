"""SQLite storage: one WAL database, each record's JSON kept whole.

One connection writes (behind a lock, one transaction per request); each
worker thread reads through its own connection, so reads never wait for
writes (WAL). A request is acknowledged only after its transaction has
committed, and with ``synchronous=FULL`` a commit returns only after the WAL
has been fsync'ed: an acknowledged record survives ``kill -9`` and power loss.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic_core import to_json

from .models import LogRecordIn, utc_text

SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    id             TEXT PRIMARY KEY,
    time_ms        INTEGER NOT NULL,
    host           TEXT,
    cycle          INTEGER,
    event          TEXT NOT NULL,
    container_id   TEXT,
    container_name TEXT,
    container_type TEXT,
    cpu_ratio      REAL,
    cpu_cores      REAL,
    memory_bytes   INTEGER,
    memory_ratio   REAL,
    received_ms    INTEGER NOT NULL,
    record         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_time ON logs (time_ms, id);
CREATE INDEX IF NOT EXISTS logs_event_time ON logs (event, time_ms);
CREATE INDEX IF NOT EXISTS logs_name_time ON logs (container_name, time_ms);
CREATE INDEX IF NOT EXISTS logs_cid_time ON logs (container_id, time_ms);
"""

# The graphs' downsampling, kept up to date in the same transaction as the
# records: per host, cycle and container type, the total memory and CPU of
# that type's containers in that cycle (from keep/kill/would_kill/kill_failed
# records).
# A graph over 100,000 records then reads about a fifth as many rows, from
# one covering index.
USAGE_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    host           TEXT NOT NULL,
    cycle          INTEGER NOT NULL,
    container_type TEXT NOT NULL,
    time_ms        INTEGER NOT NULL,
    memory_sum     INTEGER NOT NULL DEFAULT 0,
    memory_n       INTEGER NOT NULL DEFAULT 0,
    cpu_sum        REAL NOT NULL DEFAULT 0,
    cpu_n          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (host, cycle, container_type)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_time ON usage
    (time_ms, container_type, memory_n, memory_sum, cpu_n, cpu_sum);
"""

USAGE_UPSERT = """
INSERT INTO usage (host, cycle, container_type, time_ms, memory_sum, memory_n, cpu_sum, cpu_n)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (host, cycle, container_type) DO UPDATE SET
    time_ms = min(time_ms, excluded.time_ms),
    memory_sum = memory_sum + excluded.memory_sum,
    memory_n = memory_n + excluded.memory_n,
    cpu_sum = cpu_sum + excluded.cpu_sum,
    cpu_n = cpu_n + excluded.cpu_n
"""

USAGE_BACKFILL = """
INSERT INTO usage (host, cycle, container_type, time_ms, memory_sum, memory_n, cpu_sum, cpu_n)
SELECT host, cycle, container_type, min(time_ms), coalesce(sum(memory_bytes), 0),
       count(memory_bytes), coalesce(sum(cpu_ratio), 0.0), count(cpu_ratio)
FROM logs
WHERE event IN ('keep', 'kill', 'would_kill', 'kill_failed') AND container_type IS NOT NULL
GROUP BY host, cycle, container_type
"""

INSERT = """
INSERT OR IGNORE INTO logs (
    id, time_ms, host, cycle, event, container_id, container_name,
    container_type, cpu_ratio, cpu_cores, memory_bytes, memory_ratio,
    received_ms, record
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

USAGE_EVENTS = ("keep", "kill", "would_kill", "kill_failed")
READ_POOL_SIZE = 8


@dataclass(frozen=True)
class Filters:
    """The record filters shared by GET /logs and the export."""

    container: str | None = None
    types: Sequence[str] = ()
    events: Sequence[str] = ()
    host: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if self.container:
            clauses.append("(container_name = ? OR container_id = ? OR container_id LIKE ?)")
            prefix = self.container if _is_id_prefix(self.container) else "\x00"
            args += [self.container, self.container, prefix + "%"]
        if self.types:
            clauses.append(f"container_type IN ({','.join('?' * len(self.types))})")
            args += list(self.types)
        if self.events:
            clauses.append(f"event IN ({','.join('?' * len(self.events))})")
            args += list(self.events)
        if self.host:
            clauses.append("host = ?")
            args.append(self.host)
        if self.since_ms is not None:
            clauses.append("time_ms >= ?")
            args.append(self.since_ms)
        if self.until_ms is not None:
            clauses.append("time_ms <= ?")
            args.append(self.until_ms)
        return (" AND ".join(clauses) or "1"), args


def _is_id_prefix(text: str) -> bool:
    """A short container id (12+ hex digits) also matches the full id."""
    return 12 <= len(text) < 64 and all(c in "0123456789abcdef" for c in text)


@dataclass
class Counters:
    """Running totals for the live page, kept in memory, seeded from the database."""

    total: int = 0
    by_event: dict[str, int] = field(default_factory=dict)
    kills_by_type: dict[str, int] = field(default_factory=dict)
    last_time_ms: int | None = None
    last_cycle: dict[str, Any] | None = None
    last_cycle_ms: int | None = None

    def add(self, record: LogRecordIn, raw: dict[str, Any]) -> None:
        self.total += 1
        self.by_event[record.event] = self.by_event.get(record.event, 0) + 1
        if record.event == "kill":
            kind = record.container_type or "unknown"
            self.kills_by_type[kind] = self.kills_by_type.get(kind, 0) + 1
        ms = record.time_ms
        if self.last_time_ms is None or ms >= self.last_time_ms:
            self.last_time_ms = ms
        if record.event == "cycle" and (self.last_cycle_ms is None or ms >= self.last_cycle_ms):
            self.last_cycle_ms = ms
            self.last_cycle = raw

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_event": dict(self.by_event),
            "kills_by_type": dict(self.kills_by_type),
            "last_time": utc_text(self.last_time_ms) if self.last_time_ms is not None else None,
            "last_cycle": self.last_cycle,
        }


# Characters that JSON leaves raw but many line splitters (Python's
# str.splitlines, JavaScript) treat as line breaks: escaped, so an exported
# JSON Lines file has exactly one record per line for every reader.
_LINE_BREAKS = {
    "\x1c": "\\u001c",
    "\x1d": "\\u001d",
    "\x1e": "\\u001e",
    "\x85": "\\u0085",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_LINE_BREAKS_TABLE = str.maketrans(_LINE_BREAKS)


def _dump(raw: dict[str, Any]) -> str:
    """Compact JSON text of a record as received (pydantic-core: fast, UTF-8)."""
    text = to_json(raw).decode()
    if not text.isascii():
        text = text.translate(_LINE_BREAKS_TABLE)
    return text


def _add_usage(usage: dict[tuple[str, int, str], list[Any]], rec: LogRecordIn, ms: int) -> None:
    key = (rec.host, rec.cycle, rec.container_type or "unknown")
    acc = usage.setdefault(key, [ms, 0, 0, 0.0, 0])
    acc[0] = min(acc[0], ms)
    if rec.memory_bytes is not None:
        acc[1] += rec.memory_bytes
        acc[2] += 1
    if rec.cpu_ratio is not None:
        acc[3] += rec.cpu_ratio
        acc[4] += 1


def _row(rec: LogRecordIn, raw: dict[str, Any], received_ms: int) -> tuple[Any, ...]:
    return (
        rec.id,
        rec.time_ms,
        rec.host,
        rec.cycle,
        rec.event,
        rec.container_id,
        rec.container_name,
        rec.container_type,
        rec.cpu_ratio,
        rec.cpu_cores,
        rec.memory_bytes,
        rec.memory_ratio,
        received_ms,
        _dump(raw),
    )


@dataclass
class _Job:
    """One request's records on their way to a (group) commit."""

    records: Sequence[tuple[LogRecordIn, dict[str, Any]]]
    rows: list[tuple[Any, ...]]
    stored: list[dict[str, Any]] = field(default_factory=list)
    added: list[tuple[LogRecordIn, dict[str, Any]]] = field(default_factory=list)
    error: Exception | None = None
    done: bool = False

    def fail(self, error: Exception) -> None:
        self.error = error
        self.stored = []
        self.added = []


class Database:
    """The log store. Thread-safe: FastAPI runs sync work in a thread pool."""

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        self.path = path
        self.synchronous = synchronous
        path.parent.mkdir(parents=True, exist_ok=True)
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        self._write_lock = threading.Lock()
        self._pending: list[_Job] = []
        self._pending_lock = threading.Lock()
        self._pool: list[sqlite3.Connection] = []
        self._pool_lock = threading.Lock()
        self._closed = False
        self._writer = self._connect()
        mode = self._writer.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(f"cannot switch {path} to WAL mode (got {mode!r})")
        self._writer.executescript(SCHEMA)
        self._create_usage()
        self.counters = self._load_counters()

    def _create_usage(self) -> None:
        """Creates the usage roll-up; fills it from the records when it is new."""
        conn = self._writer
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'usage'"
        ).fetchone()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in USAGE_SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            if not exists:
                conn.execute(USAGE_BACKFILL)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        return conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection from a small pool (worker threads come and go)."""
        with self._pool_lock:
            conn = self._pool.pop() if self._pool else None
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=1")
        try:
            yield conn
        finally:
            with self._pool_lock:
                if not self._closed and len(self._pool) < READ_POOL_SIZE:
                    self._pool.append(conn)
                    conn = None
            if conn is not None:
                conn.close()

    def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._read() as conn:
            return conn.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._pool_lock:
            self._closed = True
            for conn in self._pool:
                conn.close()
            self._pool.clear()
        with self._write_lock:
            self._writer.close()

    # -- writes -------------------------------------------------------------

    def insert(self, records: Sequence[tuple[LogRecordIn, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Stores the records not stored yet; returns those it stored.

        Returns only after the transaction holding them has committed (durable
        per ``synchronous``). Group commit: requests that arrive while another
        one is writing are written together, one savepoint each (a failing
        request undoes only its own records), under a single COMMIT, so
        concurrent senders share the fsync.
        """
        received_ms = int(time.time() * 1000)
        job = _Job(records, [_row(rec, raw, received_ms) for rec, raw in records])
        with self._pending_lock:
            self._pending.append(job)
        with self._write_lock:
            if not job.done:
                with self._pending_lock:
                    jobs, self._pending = self._pending, []
                self._write(jobs)
        if job.error is not None:
            raise job.error
        return job.stored

    def _write(self, jobs: list[_Job]) -> None:
        """Writes the jobs in one transaction (the write lock is held)."""
        conn = self._writer
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in jobs:
                conn.execute("SAVEPOINT job")
                try:
                    self._write_job(conn, job)
                except Exception as exc:  # handed to this job's caller
                    conn.execute("ROLLBACK TO job")
                    job.fail(exc)
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
        except BaseException as exc:  # the transaction failed: none of it is stored
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = exc if isinstance(exc, Exception) else RuntimeError("write interrupted")
            for job in jobs:
                job.fail(job.error or error)
            if not isinstance(exc, Exception):
                raise
        else:
            for job in jobs:
                for rec, raw in job.added:
                    self.counters.add(rec, raw)
        finally:
            for job in jobs:
                job.done = True

    @staticmethod
    def _write_job(conn: sqlite3.Connection, job: _Job) -> None:
        usage: dict[tuple[str, int, str], list[Any]] = {}
        for (rec, raw), row in zip(job.records, job.rows, strict=True):
            if conn.execute(INSERT, row).rowcount == 1:
                job.stored.append(raw)
                job.added.append((rec, raw))
                if rec.event in USAGE_EVENTS and rec.container_type is not None:
                    _add_usage(usage, rec, row[1])
        if usage:
            conn.executemany(USAGE_UPSERT, [(*k, *v) for k, v in usage.items()])

    # -- reads --------------------------------------------------------------

    def _load_counters(self) -> Counters:
        conn = self._writer
        counters = Counters()
        for event, kind, n in conn.execute(
            "SELECT event, container_type, count(*) FROM logs GROUP BY event, container_type"
        ):
            counters.total += n
            counters.by_event[event] = counters.by_event.get(event, 0) + n
            if event == "kill":
                key = kind or "unknown"
                counters.kills_by_type[key] = counters.kills_by_type.get(key, 0) + n
        counters.last_time_ms = conn.execute("SELECT max(time_ms) FROM logs").fetchone()[0]
        row = conn.execute(
            "SELECT time_ms, record FROM logs WHERE event = 'cycle' ORDER BY time_ms DESC LIMIT 1"
        ).fetchone()
        if row:
            counters.last_cycle_ms, counters.last_cycle = row[0], json.loads(row[1])
        return counters

    def ping(self) -> None:
        self._fetch("SELECT 1 FROM logs LIMIT 1")

    def page(
        self,
        filters: Filters,
        limit: int,
        offset: int = 0,
        before: tuple[int, str] | None = None,
    ) -> list[tuple[int, str, str]]:
        """Records newest first as (time_ms, id, record JSON)."""
        where, args = filters.where()
        if before is not None:
            where += " AND (time_ms < ? OR (time_ms = ? AND id < ?))"
            args += [before[0], before[0], before[1]]
        sql = (
            f"SELECT time_ms, id, record FROM logs WHERE {where} "
            "ORDER BY time_ms DESC, id DESC LIMIT ? OFFSET ?"
        )
        return self._fetch(sql, [*args, limit, offset])

    def export(self, filters: Filters, chunk: int = 2000) -> Iterator[list[str]]:
        """Record JSON texts oldest first, in chunks (each chunk one short read)."""
        where, args = filters.where()
        after: tuple[int, str] | None = None
        while True:
            extra, extra_args = "", []
            if after is not None:
                extra = " AND (time_ms > ? OR (time_ms = ? AND id > ?))"
                extra_args = [after[0], after[0], after[1]]
            sql = (
                f"SELECT time_ms, id, record FROM logs WHERE {where}{extra} "
                "ORDER BY time_ms, id LIMIT ?"
            )
            rows = self._fetch(sql, [*args, *extra_args, chunk])
            if not rows:
                return
            yield [r[2] for r in rows]
            if len(rows) < chunk:
                return
            after = (rows[-1][0], rows[-1][1])

    def time_bounds(self) -> tuple[int | None, int | None]:
        row = self._fetch("SELECT min(time_ms), max(time_ms) FROM logs")[0]
        return row[0], row[1]

    def usage_series(
        self, column: str, since_ms: int, until_ms: int, bucket_ms: int
    ) -> list[tuple[int, str, float]]:
        """Per bucket and container type: the mean over cycles of the type's total.

        ``column`` is ``memory_bytes`` or ``cpu_ratio``. Each cycle's records are
        summed per type first (what all containers of a type used together),
        then averaged over the cycles that fall in the bucket.
        """
        if column == "memory_bytes":
            total, count = "memory_sum", "memory_n"
        elif column == "cpu_ratio":
            total, count = "cpu_sum", "cpu_n"
        else:
            raise ValueError(f"no usage series for column {column!r}")
        sql = f"""
            SELECT (time_ms - ?) / ? AS b, container_type, avg({total})
            FROM usage INDEXED BY usage_time
            WHERE time_ms BETWEEN ? AND ? AND {count} > 0
            GROUP BY b, container_type ORDER BY b
        """
        args = [since_ms, bucket_ms, since_ms, until_ms]
        return self._fetch(sql, args)

    def host_cpu_series(
        self, since_ms: int, until_ms: int, bucket_ms: int
    ) -> list[tuple[int, float]]:
        """Per bucket: the mean host CPU ratio the cycle records report."""
        sql = """
            SELECT b, avg(v) FROM (
                SELECT (time_ms - ?) / ? AS b,
                       json_extract(record, '$.details.host_cpu_ratio') AS v
                FROM logs
                WHERE event = 'cycle' AND time_ms BETWEEN ? AND ?
            ) WHERE typeof(v) IN ('real', 'integer') GROUP BY b ORDER BY b
        """
        args = [since_ms, bucket_ms, since_ms, until_ms]
        return self._fetch(sql, args)

    def kill_series(
        self, since_ms: int, until_ms: int, bucket_ms: int
    ) -> list[tuple[int, str, int]]:
        """Per bucket and container type: how many containers were killed."""
        sql = """
            SELECT (time_ms - ?) / ? AS b, coalesce(container_type, 'unknown'), count(*)
            FROM logs
            WHERE event = 'kill' AND time_ms BETWEEN ? AND ?
            GROUP BY b, 2 ORDER BY b
        """
        args = [since_ms, bucket_ms, since_ms, until_ms]
        return self._fetch(sql, args)
