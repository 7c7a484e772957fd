"""PostgreSQL storage: the fleet's engine, behind several stateless workers.

Same interface and answers as ``db.Database`` (SQLite): each request is one
transaction, acknowledged after its COMMIT (``synchronous_commit`` on: the
WAL is flushed); the side tables (usage, counts, runs, hosts) are written in
the records' own transaction. The queries are the shared layer of db.py
(``db.dialect`` turns SQLite's text into PostgreSQL's); only the writes, the
schema and what several processes must share live here:

- counters: read back from the ``counts`` table (and two index lookups)
  every ``REFRESH_SECONDS`` by a thread, so every worker shows the totals of
  all of them; a worker's own writes show at once;
- the live page's fan-out: every write transaction sends a NOTIFY naming its
  rows (a range of ``seq`` and its transaction id); each worker LISTENs and
  hands the rows other workers stored to its own streams (``follow``);
- the graph cache: ``generation`` moves on every commit of any worker.

``counts`` is kept per (event, type, shard), the shard being the writing
backend's pid modulo ``SHARDS``: concurrent transactions update different
rows instead of queueing on one hot row until each other's commit.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from .db import (
    ROLLUPS_BACKFILL,
    ROLLUPS_BACKFILL_6,
    USAGE_EVENTS,
    BatchedRetention,
    Counters,
    Record,
    SharedReads,
    StorageError,
    Summary,
    dialect,
    record_row,
    respan_run,
    rollup_args,
    subtract_summary,
)
from .models import ALERT_EVENT

log = logging.getLogger("logger.postgres")

SHARDS = 16
REFRESH_SECONDS = 1.0
POOL_MAX = 8
CHANNEL = "gestor_records"
# pg_advisory_lock key of the schema migrations ('gestor' in ASCII).
MIGRATION_LOCK = 0x676573746F72

# Schema versions share SQLite's numbering (db.SCHEMA_VERSION): version 3 is
# the first one PostgreSQL has.
MIGRATIONS: list[tuple[int, str]] = [
    (
        3,
        """
CREATE TABLE logs (
    seq            bigserial NOT NULL,
    id             text PRIMARY KEY,
    time_ms        bigint NOT NULL,
    host           text,
    cycle          bigint,
    event          text NOT NULL,
    container_id   text,
    container_name text,
    container_type text,
    cpu_ratio      double precision,
    cpu_cores      double precision,
    memory_bytes   bigint,
    memory_ratio   double precision,
    received_ms    bigint NOT NULL,
    record         text NOT NULL,
    host_cpu_ratio double precision,
    run_id         text NOT NULL DEFAULT ''
);
CREATE INDEX logs_seq ON logs (seq);
CREATE INDEX logs_time ON logs (time_ms, id);
CREATE INDEX logs_event_time ON logs (event, time_ms);
CREATE INDEX logs_name_time ON logs (container_name, time_ms);
CREATE INDEX logs_cid_time ON logs (container_id text_pattern_ops, time_ms);
CREATE INDEX logs_cid_eq ON logs (container_id, time_ms);
CREATE INDEX logs_host_time ON logs (host, time_ms);
CREATE INDEX logs_host_cpu ON logs (time_ms, host_cpu_ratio) WHERE host_cpu_ratio IS NOT NULL;
CREATE TABLE usage (
    host           text NOT NULL,
    run_id         text NOT NULL,
    cycle          bigint NOT NULL,
    container_type text NOT NULL,
    time_ms        bigint NOT NULL,
    memory_sum     double precision NOT NULL DEFAULT 0,
    memory_n       bigint NOT NULL DEFAULT 0,
    cpu_sum        double precision NOT NULL DEFAULT 0,
    cpu_n          bigint NOT NULL DEFAULT 0,
    records        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (host, run_id, cycle, container_type)
);
CREATE INDEX usage_time ON usage (time_ms, container_type);
CREATE TABLE counts (
    event          text NOT NULL,
    container_type text NOT NULL,
    shard          integer NOT NULL,
    n              bigint NOT NULL,
    PRIMARY KEY (event, container_type, shard)
);
CREATE TABLE runs (
    host     text NOT NULL,
    run_id   text NOT NULL,
    first_ms bigint NOT NULL,
    last_ms  bigint NOT NULL,
    PRIMARY KEY (host, run_id)
);
CREATE INDEX runs_first ON runs (first_ms);
CREATE INDEX runs_last ON runs (last_ms);
CREATE TABLE hosts (
    host             text PRIMARY KEY,
    last_received_ms bigint NOT NULL
);
CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text
);
""",
    ),
    (
        4,
        """
CREATE TABLE rollups (
    minute_ms      bigint NOT NULL,
    host           text NOT NULL,
    container_type text NOT NULL,
    records        bigint NOT NULL DEFAULT 0,
    cycles         bigint NOT NULL DEFAULT 0,
    kills          bigint NOT NULL DEFAULT 0,
    kill_failed    bigint NOT NULL DEFAULT 0,
    errors         bigint NOT NULL DEFAULT 0,
    removals       bigint NOT NULL DEFAULT 0,
    memory_sum     double precision NOT NULL DEFAULT 0,
    memory_n       bigint NOT NULL DEFAULT 0,
    cpu_sum        double precision NOT NULL DEFAULT 0,
    cpu_n          bigint NOT NULL DEFAULT 0,
    last_ms        bigint NOT NULL,
    PRIMARY KEY (minute_ms, host, container_type)
);
"""
        + ROLLUPS_BACKFILL.replace("%", "%%"),
    ),
]
MIGRATIONS.append(
    # Records expire by arrival (received_ms), not by the sender's clock.
    (5, "CREATE INDEX logs_received ON logs (received_ms)")
)
MIGRATIONS.append(
    # The graphs read the rollups: cycles per type and the host CPU line.
    (
        6,
        """
ALTER TABLE rollups
    ADD COLUMN host_cpu_sum double precision NOT NULL DEFAULT 0,
    ADD COLUMN host_cpu_n bigint NOT NULL DEFAULT 0,
    ADD COLUMN memory_cycles bigint NOT NULL DEFAULT 0,
    ADD COLUMN cpu_cycles bigint NOT NULL DEFAULT 0;
"""
        + ";\n".join(ROLLUPS_BACKFILL_6)
        + """;
DROP INDEX logs_host_cpu;
DROP INDEX usage_time;
""",
    )
)
MIGRATIONS.append(
    # The rollups keyed by (minute, type, host), as on SQLite (db.ROLLUPS_SCHEMA).
    (
        7,
        "ALTER TABLE rollups DROP CONSTRAINT rollups_pkey,"
        " ADD PRIMARY KEY (minute_ms, container_type, host)",
    )
)
SCHEMA_VERSION = MIGRATIONS[-1][0]

COLUMNS = (
    "id, time_ms, host, cycle, event, container_id, container_name, container_type,"
    " cpu_ratio, cpu_cores, memory_bytes, memory_ratio, received_ms, record,"
    " host_cpu_ratio, run_id"
)


def _from_json_rows(types: str) -> str:
    """A SELECT of the rows of one JSON parameter (an array of arrays), each
    column cast to its type. One text parameter, dumped by the C JSON
    encoder, costs the worker far less than one typed array per column."""
    cols = ", ".join(f"(r->>{i})::{t}" for i, t in enumerate(types.split()))
    return f"SELECT {cols} FROM json_array_elements(%s::json) AS r"


# The types of COLUMNS, in their order.
COLUMN_TYPES = (
    "text bigint text bigint text text text text float8 float8 bigint float8 bigint text float8"
    " text"
)
INSERT = f"""
INSERT INTO logs ({COLUMNS})
{_from_json_rows(COLUMN_TYPES)}
ON CONFLICT (id) DO NOTHING
RETURNING id, seq
"""
# One statement for a transaction's usage rows; each row's figures after it
# tell whether the row gained its first memory or CPU figure (a cycle more
# in the rollups).
USAGE_UPSERT = f"""
INSERT INTO usage AS u (host, run_id, cycle, container_type, time_ms, memory_sum, memory_n,
                        cpu_sum, cpu_n, records)
{_from_json_rows("text text bigint text bigint float8 bigint float8 bigint bigint")}
ON CONFLICT (host, run_id, cycle, container_type) DO UPDATE SET
    time_ms = least(u.time_ms, excluded.time_ms),
    memory_sum = u.memory_sum + excluded.memory_sum,
    memory_n = u.memory_n + excluded.memory_n,
    cpu_sum = u.cpu_sum + excluded.cpu_sum,
    cpu_n = u.cpu_n + excluded.cpu_n,
    records = u.records + excluded.records
RETURNING host, run_id, cycle, container_type, memory_n, cpu_n, time_ms
"""
COUNTS_UPSERT = f"""
INSERT INTO counts AS c (event, container_type, shard, n)
VALUES (%s, %s, mod(pg_backend_pid(), {SHARDS}), %s)
ON CONFLICT (event, container_type, shard) DO UPDATE SET n = c.n + excluded.n
"""
RUNS_UPSERT = """
INSERT INTO runs AS r (host, run_id, first_ms, last_ms) VALUES (%s, %s, %s, %s)
ON CONFLICT (host, run_id) DO UPDATE SET
    first_ms = least(r.first_ms, excluded.first_ms),
    last_ms = greatest(r.last_ms, excluded.last_ms)
"""
ROLLUPS_UPSERT = """
INSERT INTO rollups AS r (minute_ms, host, container_type, records, cycles, kills, kill_failed,
                          errors, removals, memory_sum, memory_n, cpu_sum, cpu_n, host_cpu_sum,
                          host_cpu_n, memory_cycles, cpu_cycles, last_ms)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (minute_ms, host, container_type) DO UPDATE SET
    records = r.records + excluded.records,
    cycles = r.cycles + excluded.cycles,
    kills = r.kills + excluded.kills,
    kill_failed = r.kill_failed + excluded.kill_failed,
    errors = r.errors + excluded.errors,
    removals = r.removals + excluded.removals,
    memory_sum = r.memory_sum + excluded.memory_sum,
    memory_n = r.memory_n + excluded.memory_n,
    cpu_sum = r.cpu_sum + excluded.cpu_sum,
    cpu_n = r.cpu_n + excluded.cpu_n,
    host_cpu_sum = r.host_cpu_sum + excluded.host_cpu_sum,
    host_cpu_n = r.host_cpu_n + excluded.host_cpu_n,
    memory_cycles = r.memory_cycles + excluded.memory_cycles,
    cpu_cycles = r.cpu_cycles + excluded.cpu_cycles,
    last_ms = greatest(r.last_ms, excluded.last_ms)
"""
HOSTS_UPSERT = """
INSERT INTO hosts AS h (host, last_received_ms) VALUES (%s, %s)
ON CONFLICT (host) DO UPDATE SET
    last_received_ms = greatest(h.last_received_ms, excluded.last_received_ms)
"""
# The rows one transaction stored (its NOTIFY names them): xmin is the
# low 32 bits of the writing transaction's id.
FOLLOW = """
SELECT record FROM logs
WHERE seq BETWEEN ? AND ? AND xmin::text = ?
ORDER BY time_ms DESC, id DESC LIMIT ?
"""
FOLLOW_LIMIT = 50
# A notification carries its transaction's records when they fit (PostgreSQL
# takes payloads under 8,000 bytes): a gestor cycle's 8 records do (about
# 5.5 kB), and the other workers need no query to show them.
NOTIFY_MAX_BYTES = 7_900


def migrate(url: str) -> int:
    """Brings the database to SCHEMA_VERSION under an advisory lock (workers and
    one-shot migrations may run at once: one applies, the others wait and find
    nothing to do); returns the version found before."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            found = row[0] if row and row[0] is not None else 0
            if found > SCHEMA_VERSION:
                raise RuntimeError(
                    f"the database has schema version {found}, newer than this service's"
                    f" {SCHEMA_VERSION}: run a newer logger image"
                )
            for version, script in MIGRATIONS:
                if version <= found:
                    continue
                started = time.monotonic()
                with conn.transaction():
                    conn.execute(script)  # type: ignore[arg-type]
                    conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
                log.info("migrated to schema %d in %.2f s", version, time.monotonic() - started)
            return found
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def _without_nul(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """PostgreSQL's text cannot hold NUL: in the searchable columns it becomes
    U+FFFD. The record's JSON (what reads return) escapes it, so it is kept
    exactly as sent."""
    return tuple(v.replace("\x00", "\ufffd") if isinstance(v, str) else v for v in row)


def _storage_error(exc: psycopg.Error) -> StorageError:
    return StorageError(f"PostgreSQL: {exc}")


class PostgresDatabase(SharedReads, BatchedRetention):
    """The log store on PostgreSQL. Thread-safe (a connection pool)."""

    engine = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self.worker = uuid.uuid4().hex[:16]  # tells this worker's NOTIFYs from others'
        self.generation = 0
        self._closed = threading.Event()
        migrate(url)
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=POOL_MAX,
            kwargs={"autocommit": True},
            open=True,
            name=f"logger-{os.getpid()}",
        )
        self._pool.wait(timeout=30)
        self.counters = self._load_counters()
        self._followers: list[Callable[[list[dict[str, Any]]], None]] = []
        self._threads = [
            threading.Thread(target=self._refresh_loop, name="counters", daemon=True),
            threading.Thread(target=self._listen_loop, name="listen", daemon=True),
        ]
        self._listening = threading.Event()
        for thread in self._threads:
            thread.start()
        self._listening.wait(10)

    # -- sharing between workers ----------------------------------------------

    def follow(self, callback: Callable[[list[dict[str, Any]]], None]) -> None:
        """``callback(records)`` (newest first, in the listener's thread) for
        every batch another worker stores."""
        self._followers.append(callback)

    def _refresh_loop(self) -> None:
        while not self._closed.wait(REFRESH_SECONDS):
            try:
                self.counters = self._load_counters()
            except (psycopg.Error, StorageError) as exc:
                log.warning("cannot refresh the counters: %s", exc)

    def _listen_loop(self) -> None:
        while not self._closed.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    while not self._closed.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._on_notify(note.payload)
            except (psycopg.Error, StorageError) as exc:
                if self._closed.is_set():
                    return
                log.warning("LISTEN %s failed (%s); again in 1 s", CHANNEL, exc)
                self._closed.wait(1.0)

    def _on_notify(self, payload: str) -> None:
        try:
            note = json.loads(payload)
        except ValueError:
            return
        if note.get("w") == self.worker:
            return
        self.generation += 1
        if not self._followers:
            return
        records = note.get("r")
        if not isinstance(records, list):
            if note["lo"] > note["hi"]:
                return  # no rows (retention): only the graphs' data changed
            # Too many to carry: read from the pool (the listening connection
            # is busy inside notifies()).
            rows = self._fetch(
                FOLLOW, (note["lo"], note["hi"], str(int(note["tx"]) % 2**32), FOLLOW_LIMIT)
            )
            records = [json.loads(r[0]) for r in rows]
        if records:
            for callback in self._followers:
                callback(records)

    # -- reads ------------------------------------------------------------------

    def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            with self._pool.connection() as conn:
                return conn.execute(dialect(sql, True), list(args)).fetchall()
        except psycopg.Error as exc:
            raise _storage_error(exc) from exc

    def _load_counters(self) -> Counters:
        counters = Counters()
        for event, ctype, n in self._fetch(
            "SELECT event, container_type, sum(n)::bigint FROM counts GROUP BY 1, 2"
        ):
            if n:
                counters.count(event, ctype or None, int(n))
        counters.last_time_ms = self._fetch("SELECT max(time_ms) FROM logs")[0][0]
        row = self._fetch(
            "SELECT time_ms, record FROM logs WHERE event = 'cycle' ORDER BY time_ms DESC LIMIT 1"
        )
        if row:
            counters.last_cycle_ms, counters.last_cycle = row[0][0], json.loads(row[0][1])
        for (record,) in self._fetch(
            "SELECT record FROM logs WHERE event = ? ORDER BY time_ms", (ALERT_EVENT,)
        ):
            counters.alerts.note_stored(json.loads(record))
        return counters

    def ping(self) -> None:
        self._fetch("SELECT 1 FROM logs LIMIT 1")

    def size_bytes(self) -> int:
        return int(self._fetch("SELECT pg_database_size(current_database())")[0][0])

    def _with_conn(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            with self._pool.connection() as conn:
                return fn(conn, *args)
        except psycopg.Error as exc:
            raise _storage_error(exc) from exc

    # -- writes -----------------------------------------------------------------

    def insert(
        self,
        records: Sequence[tuple[Record, dict[str, Any]]],
        received_ms: int | None = None,
    ) -> list[dict[str, Any]]:
        """Stores the records not stored yet, in one transaction; returns those
        it stored, after COMMIT."""
        if not records:
            return []
        if received_ms is None:  # given only by tests, to age records' arrival
            received_ms = int(time.time() * 1000)
        rows = [
            _without_nul((*record_row(rec, raw, received_ms), rec.run_id or ""))
            for rec, raw in records
        ]
        batch = json.dumps(rows)
        try:
            with self._pool.connection() as conn, conn.pipeline(), conn.transaction():
                inserted = dict(conn.execute(INSERT, (batch,)).fetchall())
                stored: list[dict[str, Any]] = []
                added: list[tuple[Record, dict[str, Any]]] = []
                seqs: list[int] = []
                texts: list[tuple[int, str, str]] = []  # (time_ms, id, JSON) stored
                summary = Summary()
                for (rec, raw), row in zip(records, rows, strict=True):
                    seq = inserted.pop(rec.id, None)
                    if seq is None:
                        continue  # already stored (or twice in this batch)
                    seqs.append(seq)
                    stored.append(raw)
                    added.append((rec, raw))
                    texts.append((row[1], row[0], row[13]))
                    summary.add(
                        rec.host or "",
                        rec.run_id or "",
                        rec.cycle or 0,
                        rec.event,
                        rec.container_type,
                        row[1],
                        rec.memory_bytes,
                        rec.cpu_ratio,
                        row[14],
                    )
                    if rec.event != ALERT_EVENT:
                        summary.hosts[rec.host] = received_ms
                if added:
                    self._write_summary(conn, summary)
                    texts.sort(reverse=True)  # newest first, as the page shows them
                    newest = [text for _, _, text in texts[:FOLLOW_LIMIT]]
                    self._notify(conn, min(seqs), max(seqs), newest)
        except psycopg.Error as exc:
            raise _storage_error(exc) from exc
        for rec, raw in added:
            self.counters.add(rec, raw)
        if added:
            self.generation += 1
        return stored

    def _notify(
        self, conn: psycopg.Connection, lo: int, hi: int, newest: list[str] | None = None
    ) -> None:
        """Tells every worker (at COMMIT, in commit order) which rows this
        transaction stored: ``newest``, the texts of its newest records
        (newest first), when they fit in a notification, else ``seq`` from
        ``lo`` to ``hi`` written by it (the others read them)."""
        if newest:
            payload = f'{{"w":"{self.worker}","r":[{",".join(newest)}]}}'
            if len(payload.encode()) <= NOTIFY_MAX_BYTES:
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
                return
        conn.execute(
            "SELECT pg_notify(%s, json_build_object('w', %s::text, 'lo', %s::bigint,"
            " 'hi', %s::bigint, 'tx', pg_current_xact_id()::text)::text)",
            (CHANNEL, self.worker, lo, hi),
        )

    @staticmethod
    def _write_summary(conn: psycopg.Connection, summary: Summary) -> None:
        """The side tables, keys in one order everywhere: no two transactions
        wait for each other's rows in opposite orders (no deadlock). The usage
        rows first: the cycles they gain go into the rollups."""
        usage = [_without_nul((*k, *v)) for k, v in sorted(summary.usage.items())]
        if usage:
            fixed = {row[:4]: key for row, key in zip(usage, sorted(summary.usage), strict=True)}
            rows = conn.execute(USAGE_UPSERT, (json.dumps(usage),))
            for *row_key, memory_n, cpu_n, time_ms in rows:
                summary.usage_written(fixed[tuple(row_key)], memory_n, cpu_n, time_ms)
        counts = [_without_nul((*k, n)) for k, n in sorted(summary.counts.items())]
        spans = [_without_nul((*k, *v)) for k, v in sorted(summary.runs.items())]
        hosts = [_without_nul(item) for item in sorted(summary.hosts.items())]
        minutes = [_without_nul(rollup_args(k, v)) for k, v in sorted(summary.minutes.items())]
        with conn.cursor() as cur:
            for sql, params in (
                (COUNTS_UPSERT, counts),
                (RUNS_UPSERT, spans),
                (HOSTS_UPSERT, hosts),
                (ROLLUPS_UPSERT, minutes),
            ):
                if params:
                    cur.executemany(sql, params)

    def probe_write(self) -> None:
        try:
            with self._pool.connection() as conn:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('health_probe_ms', %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(int(time.time() * 1000)),),
                )
        except psycopg.Error as exc:
            raise _storage_error(exc) from exc

    # -- retention ----------------------------------------------------------------

    def delete_batch(self, cut_ms: int, limit: int) -> int:
        """Deletes up to ``limit`` of the oldest records older than ``cut_ms``
        and what they contributed to the side tables, in one transaction."""
        try:
            with self._pool.connection() as conn, conn.transaction():
                rows = conn.execute(
                    "DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE received_ms < %s"
                    " ORDER BY received_ms LIMIT %s FOR UPDATE SKIP LOCKED)"
                    " RETURNING time_ms, coalesce(host, ''), cycle, event, container_type,"
                    " memory_bytes, cpu_ratio, run_id, host_cpu_ratio",
                    (cut_ms, limit),
                ).fetchall()
                if not rows:
                    return 0
                gone = Summary()
                for ms, host, cycle, event, ctype, memory, cpu, run, host_cpu in rows:
                    gone.add(host, run, cycle, event, ctype, ms, memory, cpu, host_cpu)
                times = [r[0] for r in rows]
                self._subtract(conn, gone, min(times), max(times))
                for host, run in sorted(gone.runs):
                    respan_run(conn, host, run, "run_id")
                self._notify(conn, 0, -1)  # no rows to show: the graphs' data changed
        except psycopg.Error as exc:
            raise _storage_error(exc) from exc
        for (event, ctype), n in gone.counts.items():
            self.counters.count(event, ctype or None, -n)
        self.generation += 1
        return len(rows)

    @staticmethod
    def _subtract(conn: psycopg.Connection, gone: Summary, first_ms: int, last_ms: int) -> None:
        """Takes ``gone`` out of the side tables (see ``db.subtract_summary``)."""
        subtract_summary(conn, gone, first_ms, last_ms, "run_id")
        # Taken from this backend's shard first, then any: the sum is what counts.
        for (event, ctype), n in sorted(gone.counts.items()):
            conn.execute(
                f"INSERT INTO counts (event, container_type, shard, n)"
                f" VALUES (%s, %s, mod(pg_backend_pid(), {SHARDS}), %s)"
                " ON CONFLICT (event, container_type, shard) DO UPDATE SET n = counts.n"
                " + excluded.n",
                (event, ctype, -n),
            )

    def forget_hosts(self, cut_ms: int) -> None:
        self._with_conn(
            lambda c: c.execute("DELETE FROM hosts WHERE last_received_ms < %s", (cut_ms,))
        )

    def vacuum(self, stop: threading.Event | None = None) -> int:
        """PostgreSQL's autovacuum gives deleted rows' space back for reuse."""
        return 0

    def checkpoint(self) -> None:
        """PostgreSQL checkpoints by itself."""

    def close(self) -> None:
        self._closed.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._pool.close()


__all__ = ["USAGE_EVENTS", "PostgresDatabase", "migrate"]
