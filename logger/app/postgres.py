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

The records and the side tables they add to (usage, counts, runs, rollups)
are partitioned by day of arrival (schema 8): retention drops a day's
partitions whole, with no row deletes and nothing to subtract, and the reads
sum a key's rows over the days it spans. A record's id is unique within its
day and checked against the other days at insert.

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
    IS_USAGE,
    ROLLUPS_BACKFILL,
    ROLLUPS_BACKFILL_6,
    USAGE_EVENTS,
    USAGE_WHERE,
    Counters,
    Record,
    SharedReads,
    StorageError,
    Summary,
    dialect,
    record_row,
    rollup_args,
)
from .models import ALERT_EVENT

log = logging.getLogger("logger.postgres")

SHARDS = 16
REFRESH_SECONDS = 1.0
POOL_MAX = 8
CHANNEL = "gestor_records"
# pg_advisory_lock key of the schema migrations ('gestor' in ASCII).
MIGRATION_LOCK = 0x676573746F72
# Taken while a day's partitions are made, and while retention drops days.
PARTITION_LOCK = MIGRATION_LOCK + 1
RETENTION_LOCK = MIGRATION_LOCK + 2

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
# One partition per day of arrival (received_ms), for the records and every
# side table they add to: retention drops a day's partitions whole (no row
# deletes, no subtraction), and the reads sum the side tables' rows of a key
# over the days they span. ``day`` is received_ms // DAY_MS (UTC days).
DAY_MS = 86_400_000
PARTITIONED = ("logs", "usage", "rollups", "counts", "runs")
PARTITIONS_SCHEMA = """
CREATE TABLE logs (
    seq            bigserial NOT NULL,
    id             text NOT NULL,
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
    run_id         text NOT NULL DEFAULT '',
    day            integer NOT NULL,
    UNIQUE (id, day)
) PARTITION BY RANGE (day);
CREATE INDEX logs_seq ON logs (seq);
CREATE INDEX logs_time ON logs (time_ms, id);
CREATE INDEX logs_event_time ON logs (event, time_ms);
CREATE INDEX logs_name_time ON logs (container_name, time_ms);
CREATE INDEX logs_cid_time ON logs (container_id text_pattern_ops, time_ms);
CREATE INDEX logs_cid_eq ON logs (container_id, time_ms);
CREATE INDEX logs_host_time ON logs (host, time_ms);
CREATE TABLE usage (
    host           text NOT NULL,
    run_id         text NOT NULL,
    cycle          bigint NOT NULL,
    container_type text NOT NULL,
    day            integer NOT NULL,
    time_ms        bigint NOT NULL,
    memory_sum     double precision NOT NULL DEFAULT 0,
    memory_n       bigint NOT NULL DEFAULT 0,
    cpu_sum        double precision NOT NULL DEFAULT 0,
    cpu_n          bigint NOT NULL DEFAULT 0,
    records        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (host, run_id, cycle, container_type, day)
) PARTITION BY RANGE (day);
CREATE TABLE counts (
    event          text NOT NULL,
    container_type text NOT NULL,
    shard          integer NOT NULL,
    day            integer NOT NULL,
    n              bigint NOT NULL,
    PRIMARY KEY (event, container_type, shard, day)
) PARTITION BY RANGE (day);
CREATE TABLE runs (
    host     text NOT NULL,
    run_id   text NOT NULL,
    day      integer NOT NULL,
    first_ms bigint NOT NULL,
    last_ms  bigint NOT NULL,
    PRIMARY KEY (host, run_id, day)
) PARTITION BY RANGE (day);
CREATE INDEX runs_first ON runs (first_ms);
CREATE TABLE rollups (
    minute_ms      bigint NOT NULL,
    host           text NOT NULL,
    container_type text NOT NULL,
    day            integer NOT NULL,
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
    host_cpu_sum   double precision NOT NULL DEFAULT 0,
    host_cpu_n     bigint NOT NULL DEFAULT 0,
    memory_cycles  bigint NOT NULL DEFAULT 0,
    cpu_cycles     bigint NOT NULL DEFAULT 0,
    last_ms        bigint NOT NULL,
    PRIMARY KEY (minute_ms, container_type, host, day)
) PARTITION BY RANGE (day);
-- Days first..last's partitions of every partitioned table, those missing.
-- Under a transaction-level advisory lock: two workers reaching a new day at
-- once would otherwise race on the catalog.
CREATE FUNCTION gestor_day_partitions(first bigint, last bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t text;
    d bigint;
BEGIN
    PERFORM pg_advisory_xact_lock({partition_lock});
    FOR d IN first..last LOOP
        FOREACH t IN ARRAY ARRAY['logs', 'usage', 'rollups', 'counts', 'runs'] LOOP
            EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %I'
                           ' FOR VALUES FROM (%s) TO (%s)', t || '_d' || d, t, d, d + 1);
        END LOOP;
    END LOOP;
END
$$;
"""
# A schema 7 database's records copied into the partitions of their arrival
# day; the side tables rebuilt from them per day (what the writes would have
# made, had they been partitioned from the start). The hosts table stays.
_HOST_CPU = "event = 'cycle' AND host_cpu_ratio BETWEEN 0 AND 1"
PARTITIONS_MIGRATION = f"""
ALTER TABLE logs RENAME TO logs_v7;
ALTER INDEX logs_pkey RENAME TO logs_v7_pkey;
ALTER SEQUENCE logs_seq_seq RENAME TO logs_v7_seq_seq;
DROP INDEX logs_seq, logs_time, logs_event_time, logs_name_time, logs_cid_time, logs_cid_eq,
    logs_host_time;
DROP TABLE usage, rollups, counts, runs;
{PARTITIONS_SCHEMA}
SELECT gestor_day_partitions(d, d)
FROM (SELECT DISTINCT received_ms / {DAY_MS} AS d FROM logs_v7) AS days;
INSERT INTO logs ({{columns}}, seq, day)
SELECT {{columns}}, seq, received_ms / {DAY_MS} FROM logs_v7;
SELECT setval('logs_seq_seq', (SELECT coalesce(max(seq), 0) + 1 FROM logs_v7), false);
DROP TABLE logs_v7;
INSERT INTO counts (event, container_type, shard, day, n)
SELECT event, coalesce(container_type, ''), 0, day, count(*) FROM logs GROUP BY 1, 2, 4;
INSERT INTO runs (host, run_id, day, first_ms, last_ms)
SELECT coalesce(host, ''), run_id, day, min(time_ms), max(time_ms)
FROM logs WHERE run_id != '' GROUP BY 1, 2, 3;
INSERT INTO usage (host, run_id, cycle, container_type, day, time_ms, memory_sum, memory_n,
                   cpu_sum, cpu_n, records)
SELECT coalesce(host, ''), run_id, coalesce(cycle, 0), container_type, day, min(time_ms),
       coalesce(sum(memory_bytes), 0), count(memory_bytes), coalesce(sum(cpu_ratio), 0),
       count(cpu_ratio), count(*)
FROM logs WHERE {USAGE_WHERE} GROUP BY 1, 2, 3, 4, 5;
INSERT INTO rollups (minute_ms, host, container_type, day, records, cycles, kills, kill_failed,
                     errors, removals, memory_sum, memory_n, cpu_sum, cpu_n, host_cpu_sum,
                     host_cpu_n, last_ms)
SELECT (time_ms / 60000) * 60000, coalesce(host, ''), coalesce(container_type, ''), day,
       count(*), count(*) FILTER (WHERE event = 'cycle'), count(*) FILTER (WHERE event = 'kill'),
       count(*) FILTER (WHERE event = 'kill_failed'), count(*) FILTER (WHERE event = 'error'),
       count(*) FILTER (WHERE event = 'remove'),
       coalesce(sum(memory_bytes) FILTER (WHERE {IS_USAGE}), 0),
       count(memory_bytes) FILTER (WHERE {IS_USAGE}),
       coalesce(sum(cpu_ratio) FILTER (WHERE {IS_USAGE}), 0),
       count(cpu_ratio) FILTER (WHERE {IS_USAGE}),
       coalesce(sum(host_cpu_ratio) FILTER (WHERE {_HOST_CPU}), 0),
       count(*) FILTER (WHERE {_HOST_CPU}), max(time_ms)
FROM logs WHERE event != 'alert' GROUP BY 1, 2, 3, 4;
INSERT INTO rollups (minute_ms, host, container_type, day, memory_cycles, cpu_cycles, last_ms)
SELECT (time_ms / 60000) * 60000, host, container_type, day,
       count(*) FILTER (WHERE memory_n > 0), count(*) FILTER (WHERE cpu_n > 0), max(time_ms)
FROM usage GROUP BY 1, 2, 3, 4
ON CONFLICT (minute_ms, container_type, host, day) DO UPDATE SET
    memory_cycles = excluded.memory_cycles, cpu_cycles = excluded.cpu_cycles;
"""

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
MIGRATIONS.append(
    (
        8,
        PARTITIONS_MIGRATION.replace("{columns}", COLUMNS).replace(
            "{partition_lock}", str(PARTITION_LOCK)
        ),
    )
)
SCHEMA_VERSION = MIGRATIONS[-1][0]

# A record is stored once: its id is unique within its day's partition
# (ON CONFLICT), and one already stored the day before is left out (a copy
# re-sent over midnight: gestor re-sends within minutes). Only a copy re-sent
# more than a day after the first, or two copies in flight at once over
# midnight, could be stored twice. The batch's ids are given as an array
# too, so that the day before is probed by index for them: a NOT EXISTS on
# the JSON's rows was planned as a hash anti-join over every record.
INSERT = f"""
INSERT INTO logs ({COLUMNS}, day)
SELECT *, %s FROM ({_from_json_rows(COLUMN_TYPES)}) AS b ({COLUMNS})
WHERE b.id <> ALL (ARRAY(SELECT id FROM logs WHERE id = ANY(%s) AND day = %s - 1))
ON CONFLICT (id, day) DO NOTHING
RETURNING id, seq
"""
# One statement for a transaction's usage rows; each row's figures after it
# tell whether the row gained its first memory or CPU figure (a cycle more
# in the rollups).
USAGE_UPSERT = f"""
INSERT INTO usage AS u (host, run_id, cycle, container_type, time_ms, memory_sum, memory_n,
                        cpu_sum, cpu_n, records, day)
{_from_json_rows("text text bigint text bigint float8 bigint float8 bigint bigint int4")}
ON CONFLICT (host, run_id, cycle, container_type, day) DO UPDATE SET
    time_ms = least(u.time_ms, excluded.time_ms),
    memory_sum = u.memory_sum + excluded.memory_sum,
    memory_n = u.memory_n + excluded.memory_n,
    cpu_sum = u.cpu_sum + excluded.cpu_sum,
    cpu_n = u.cpu_n + excluded.cpu_n,
    records = u.records + excluded.records
RETURNING host, run_id, cycle, container_type, memory_n, cpu_n, time_ms
"""
COUNTS_UPSERT = f"""
INSERT INTO counts AS c (event, container_type, n, day, shard)
VALUES (%s, %s, %s, %s, mod(pg_backend_pid(), {SHARDS}))
ON CONFLICT (event, container_type, shard, day) DO UPDATE SET n = c.n + excluded.n
"""
RUNS_UPSERT = """
INSERT INTO runs AS r (host, run_id, first_ms, last_ms, day) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (host, run_id, day) DO UPDATE SET
    first_ms = least(r.first_ms, excluded.first_ms),
    last_ms = greatest(r.last_ms, excluded.last_ms)
"""
ROLLUPS_UPSERT = """
INSERT INTO rollups AS r (minute_ms, host, container_type, records, cycles, kills, kill_failed,
                          errors, removals, memory_sum, memory_n, cpu_sum, cpu_n, host_cpu_sum,
                          host_cpu_n, memory_cycles, cpu_cycles, last_ms, day)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (minute_ms, container_type, host, day) DO UPDATE SET
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


def migrate(url: str, target: int | None = None) -> int:
    """Brings the database to SCHEMA_VERSION (``target``: tests of older
    schemas) under an advisory lock (workers and one-shot migrations may run
    at once: one applies, the others wait and find nothing to do); returns
    the version found before."""
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
                if version <= found or (target is not None and version > target):
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


class PostgresDatabase(SharedReads):
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
        self._days: set[int] = set()  # days whose partitions this worker saw made
        today = int(time.time() * 1000) // DAY_MS
        self._ensure_days(today, today + 1)
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
                today = int(time.time() * 1000) // DAY_MS
                self._ensure_days(today, today + 1)  # tomorrow's, made ahead
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
        day = received_ms // DAY_MS
        try:
            return self._insert(records, rows, batch, received_ms, day)
        except psycopg.errors.CheckViolation:
            # No partition for the day: dropped by another worker's retention
            # since this one made it (records that arrived days ago: tests).
            self._days.discard(day)
        try:
            return self._insert(records, rows, batch, received_ms, day)
        except psycopg.errors.CheckViolation as exc:
            raise _storage_error(exc) from exc

    def _insert(
        self,
        records: Sequence[tuple[Record, dict[str, Any]]],
        rows: list[tuple[Any, ...]],
        batch: str,
        received_ms: int,
        day: int,
    ) -> list[dict[str, Any]]:
        self._ensure_days(day, day)
        try:
            with self._pool.connection() as conn, conn.pipeline(), conn.transaction():
                ids = [row[0] for row in rows]
                inserted = dict(conn.execute(INSERT, (day, batch, ids, day)).fetchall())
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
                    self._write_summary(conn, summary, day)
                    texts.sort(reverse=True)  # newest first, as the page shows them
                    newest = [text for _, _, text in texts[:FOLLOW_LIMIT]]
                    self._notify(conn, min(seqs), max(seqs), newest)
        except psycopg.errors.CheckViolation:
            raise
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
    def _write_summary(conn: psycopg.Connection, summary: Summary, day: int) -> None:
        """The side tables' rows of arrival day ``day``, keys in one order
        everywhere: no two transactions wait for each other's rows in opposite
        orders (no deadlock). The usage rows first: the cycles they gain go
        into the rollups."""
        usage = [_without_nul((*k, *v, day)) for k, v in sorted(summary.usage.items())]
        if usage:
            fixed = {row[:4]: key for row, key in zip(usage, sorted(summary.usage), strict=True)}
            rows = conn.execute(USAGE_UPSERT, (json.dumps(usage),))
            for *row_key, memory_n, cpu_n, time_ms in rows:
                summary.usage_written(fixed[tuple(row_key)], memory_n, cpu_n, time_ms)
        counts = [_without_nul((*k, n, day)) for k, n in sorted(summary.counts.items())]
        spans = [_without_nul((*k, *v, day)) for k, v in sorted(summary.runs.items())]
        hosts = [_without_nul(item) for item in sorted(summary.hosts.items())]
        minutes = [
            _without_nul((*rollup_args(k, v), day)) for k, v in sorted(summary.minutes.items())
        ]
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

    # -- partitions and retention ----------------------------------------------

    def _ensure_days(self, first: int, last: int) -> None:
        """Makes the partitions of days ``first``..``last`` that are missing.
        Each worker makes today's and tomorrow's at start and checks every
        second (the counters' thread), so a record's insert finds its day's
        partitions made (making one locks the parent table, which waits for
        every read)."""
        wanted = set(range(first, last + 1))
        if wanted <= self._days:
            return
        try:
            with self._pool.connection() as conn, conn.transaction():
                conn.execute("SET LOCAL lock_timeout = '2s'")
                conn.execute("SELECT gestor_day_partitions(%s, %s)", (first, last))
        except psycopg.Error as exc:
            raise _storage_error(exc) from exc
        self._days |= wanted

    def stored_days(self) -> list[int]:
        """The arrival days that have partitions, oldest first."""
        rows = self._fetch(
            "SELECT substr(c.relname, 7)::integer FROM pg_inherits AS i"
            " JOIN pg_class AS c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'logs'::regclass AND c.relname ~ '^logs_d[0-9]+$'"
            " ORDER BY 1"
        )
        return [r[0] for r in rows]

    def delete_before(
        self,
        cut_ms: int,
        batch: int = 1000,
        pause: float = 0.0,
        stop: threading.Event | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> tuple[int, int]:
        """Drops the partitions of every arrival day that ended at or before
        ``cut_ms``, one day (a "batch") per transaction; returns (records
        dropped, days dropped). A day that ends after the cut is kept whole:
        a record is kept between the retention and the retention plus a day.
        ``batch`` is SQLite's (rows per batch); nothing here is a row delete."""
        first_kept = cut_ms // DAY_MS
        dropped = days = 0
        for day in self.stored_days():
            if day >= first_kept or (stop is not None and stop.is_set()):
                break
            n = self._drop_day(day)
            if n is None:
                break  # another worker is dropping days
            dropped += n
            days += 1
            if on_batch is not None:
                on_batch(n)
            if pause:
                time.sleep(pause)
        if days:
            self.forget_hosts(first_kept * DAY_MS)
            self.counters = self._load_counters()
            self.generation += 1
        return dropped, days

    def _drop_day(self, day: int) -> int | None:
        """Drops day ``day``'s partitions in one transaction; how many records
        they held, or None when another worker holds the retention lock.
        Dropping a partition locks its parent table: the lock is waited for
        briefly (inserts queue behind the waiting DROP) and the drop tried
        again at the next pass when a read holds it longer."""
        names = ", ".join(f"{table}_d{day}" for table in PARTITIONED)
        try:
            with self._pool.connection() as conn, conn.transaction():
                if not conn.execute(
                    "SELECT pg_try_advisory_xact_lock(%s)", (RETENTION_LOCK,)
                ).fetchone()[0]:
                    return None
                conn.execute("SET LOCAL lock_timeout = '200ms'")
                exists = conn.execute("SELECT to_regclass(%s)", (f"counts_d{day}",)).fetchone()
                n = 0
                if exists and exists[0] is not None:
                    n = conn.execute(f"SELECT coalesce(sum(n), 0) FROM counts_d{day}").fetchone()[0]
                conn.execute(f"DROP TABLE IF EXISTS {names}")
                self._notify(conn, 0, -1)  # no rows to show: the graphs' data changed
        except psycopg.Error as exc:
            raise _storage_error(exc) from exc
        self._days.discard(day)
        log.info("retention: dropped the partitions of day %d (%d records)", day, n)
        return int(n)

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
