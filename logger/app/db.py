"""SQLite storage: one WAL database, each record's JSON kept whole.

One connection writes (behind a lock, one transaction per request, group
commit); each worker thread reads through a pooled connection, so reads never
wait for writes (WAL). A request is acknowledged only after its transaction has
committed, and with ``synchronous=FULL`` a commit returns only after the WAL
has been fsync'ed: an acknowledged record survives ``kill -9`` and power loss.

Besides the records, five small tables are kept in the records' own
transactions, so they are exactly as durable and never count a duplicate:

- ``usage``: per host, gestor run, cycle and container type, the summed memory
  and CPU of that type's containers (which cycles reported each type: the
  graphs' divisor, counted into ``rollups``);
- ``counts``: records per (event, container type), so start-up reads a few
  rows instead of counting the whole table;
- ``runs``: first and last record time of every gestor run (graph markers);
- ``hosts``: when each host's last record was received (``/metrics``); only
  gestor's records count, not alerts (event ``alert``, see alerts.py);
- ``rollups``: per minute, host and type, what the records add up to: the
  host totals and the graphs read these (ROLLUPS_SCHEMA).

Retention deletes old records in small batches and subtracts them from these
tables in the same transaction.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic_core import to_json

from .alerts import AlertBoard, AlertRecord
from .models import ALERT_EVENT, LogRecordIn, utc_text

log = logging.getLogger("logger.db")

# PRAGMA user_version of the current schema. 0: the first schema (usage keyed
# by host, cycle and type; counters computed at start-up). 4: per-minute
# rollups (ROLLUPS_SCHEMA). 5: records expire by arrival (logs_received).
# 6: the graphs read the rollups too (cycles per type, the host CPU line).
# 7: the rollups' key is (minute, type, host): the graphs sum a minute's hosts
# per type in key order, with no sort of the window's rows.
SCHEMA_VERSION = 7

LOGS_SCHEMA = """
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
    record         TEXT NOT NULL,
    host_cpu_ratio REAL
);
"""
# host_cpu_ratio: a cycle record's details.host_cpu_ratio (the CPU graph's
# host line, summed per minute in the rollups), a column so that a migration
# backfills the rollups without parsing every cycle record's JSON.
LOGS_INDEXES = """
CREATE INDEX IF NOT EXISTS logs_time ON logs (time_ms, id);
CREATE INDEX IF NOT EXISTS logs_event_time ON logs (event, time_ms);
CREATE INDEX IF NOT EXISTS logs_name_time ON logs (container_name, time_ms);
CREATE INDEX IF NOT EXISTS logs_cid_time ON logs (container_id, time_ms);
CREATE INDEX IF NOT EXISTS logs_host_time ON logs (host, time_ms);
CREATE INDEX IF NOT EXISTS logs_received ON logs (received_ms, id);
"""
HOST_CPU_BACKFILL = """
UPDATE logs SET host_cpu_ratio = json_extract(record, '$.details.host_cpu_ratio')
WHERE event = 'cycle'
  AND json_type(record, '$.details.host_cpu_ratio') IN ('real', 'integer')
  AND json_extract(record, '$.details.host_cpu_ratio') BETWEEN 0 AND 1
"""

# Sums are REAL: a sum of 64-bit byte counts cannot overflow (a float is exact
# to 2^53 bytes, 8 PiB, far beyond any container).
SUMMARY_SCHEMA = """
CREATE TABLE usage (
    host           TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    cycle          INTEGER NOT NULL,
    container_type TEXT NOT NULL,
    time_ms        INTEGER NOT NULL,
    memory_sum     REAL NOT NULL DEFAULT 0,
    memory_n       INTEGER NOT NULL DEFAULT 0,
    cpu_sum        REAL NOT NULL DEFAULT 0,
    cpu_n          INTEGER NOT NULL DEFAULT 0,
    records        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (host, run_id, cycle, container_type)
) WITHOUT ROWID;
CREATE TABLE counts (
    event          TEXT NOT NULL,
    container_type TEXT NOT NULL,
    n              INTEGER NOT NULL,
    PRIMARY KEY (event, container_type)
) WITHOUT ROWID;
CREATE TABLE runs (
    host           TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    first_ms       INTEGER NOT NULL,
    last_ms        INTEGER NOT NULL,
    PRIMARY KEY (host, run_id)
) WITHOUT ROWID;
CREATE INDEX runs_first ON runs (first_ms);
CREATE INDEX runs_last ON runs (last_ms);
CREATE TABLE hosts (
    host             TEXT PRIMARY KEY,
    last_received_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value ANY
) WITHOUT ROWID;
"""

# The run a stored record belongs to: its `run_id`, or '' (one legacy run per
# host) for records of gestors older than run ids.
RUN_EXPR = (
    "CASE WHEN json_type(record, '$.run_id') = 'text'"
    " THEN json_extract(record, '$.run_id') ELSE '' END"
)
USAGE_EVENTS = ("keep", "kill", "would_kill", "kill_failed")
# The records the usage rows sum (SQL, both engines' migrations).
IS_USAGE = f"event IN ({', '.join(repr(e) for e in USAGE_EVENTS)})"
USAGE_WHERE = f"{IS_USAGE} AND container_type IS NOT NULL"

BACKFILL = [
    f"""INSERT INTO usage (host, run_id, cycle, container_type, time_ms, memory_sum, memory_n,
                          cpu_sum, cpu_n, records)
    SELECT coalesce(host, ''), {RUN_EXPR} AS run, cycle, container_type, min(time_ms),
           total(memory_bytes), count(memory_bytes), total(cpu_ratio), count(cpu_ratio), count(*)
    FROM logs WHERE {USAGE_WHERE}
    GROUP BY 1, 2, 3, 4""",
    """INSERT INTO counts (event, container_type, n)
    SELECT event, coalesce(container_type, ''), count(*) FROM logs GROUP BY 1, 2""",
    f"""INSERT INTO runs (host, run_id, first_ms, last_ms)
    SELECT * FROM (
        SELECT coalesce(host, '') AS h, {RUN_EXPR} AS run, min(time_ms), max(time_ms)
        FROM logs GROUP BY 1, 2
    ) WHERE run != ''""",
    """INSERT INTO hosts (host, last_received_ms)
    SELECT coalesce(host, ''), max(received_ms) FROM logs WHERE event != 'alert' GROUP BY 1""",
]

# Per minute, host and container type ('' for records without one), what
# gestor's records (alerts left out) add up to: the host totals and the graphs
# read these rows, so their cost grows with minutes x hosts, not with records.
# Written in the records' transaction like the other side tables.
# memory_cycles, cpu_cycles: how many (host, run, cycle) usage rows that
# started in the minute have a memory (CPU) figure for the type, the divisor
# of "the mean over cycles of the type's total"; host_cpu_sum, host_cpu_n: the
# cycle records' host CPU ratios (the CPU graph's host line, '' rows only).
# The key puts the type before the host: the fleet's graphs sum each minute's
# hosts per type, which SQLite then does as it walks the key (at 1,000 hosts
# a sort of the window's rows was three quarters of a graph's read).
ROLLUPS_SCHEMA = """
CREATE TABLE rollups (
    minute_ms      INTEGER NOT NULL,
    host           TEXT NOT NULL,
    container_type TEXT NOT NULL,
    records        INTEGER NOT NULL DEFAULT 0,
    cycles         INTEGER NOT NULL DEFAULT 0,
    kills          INTEGER NOT NULL DEFAULT 0,
    kill_failed    INTEGER NOT NULL DEFAULT 0,
    errors         INTEGER NOT NULL DEFAULT 0,
    removals       INTEGER NOT NULL DEFAULT 0,
    memory_sum     REAL NOT NULL DEFAULT 0,
    memory_n       INTEGER NOT NULL DEFAULT 0,
    cpu_sum        REAL NOT NULL DEFAULT 0,
    cpu_n          INTEGER NOT NULL DEFAULT 0,
    last_ms        INTEGER NOT NULL,
    host_cpu_sum   REAL NOT NULL DEFAULT 0,
    host_cpu_n     INTEGER NOT NULL DEFAULT 0,
    memory_cycles  INTEGER NOT NULL DEFAULT 0,
    cpu_cycles     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (minute_ms, container_type, host)
) WITHOUT ROWID
"""
MINUTE_MS = 60_000
# Schema 4's rollups (the columns up to last_ms), from the records.
ROLLUPS_BACKFILL = f"""
INSERT INTO rollups (minute_ms, host, container_type, records, cycles, kills, kill_failed,
                     errors, removals, memory_sum, memory_n, cpu_sum, cpu_n, last_ms)
SELECT (time_ms / 60000) * 60000, coalesce(host, ''), coalesce(container_type, ''), count(*),
       sum(CASE WHEN event = 'cycle' THEN 1 ELSE 0 END),
       sum(CASE WHEN event = 'kill' THEN 1 ELSE 0 END),
       sum(CASE WHEN event = 'kill_failed' THEN 1 ELSE 0 END),
       sum(CASE WHEN event = 'error' THEN 1 ELSE 0 END),
       sum(CASE WHEN event = 'remove' THEN 1 ELSE 0 END),
       coalesce(sum(CASE WHEN {IS_USAGE} THEN memory_bytes END), 0),
       count(CASE WHEN {IS_USAGE} THEN memory_bytes END),
       coalesce(sum(CASE WHEN {IS_USAGE} THEN cpu_ratio END), 0),
       count(CASE WHEN {IS_USAGE} THEN cpu_ratio END),
       max(time_ms)
FROM logs WHERE event != 'alert' GROUP BY 1, 2, 3
"""
# Schema 6's columns: the host CPU line from the cycle records, the cycles
# per type from the usage rows (both engines run these, after the above).
ROLLUPS_BACKFILL_6 = [
    """
UPDATE rollups SET host_cpu_sum = s.total, host_cpu_n = s.n
FROM (SELECT (time_ms / 60000) * 60000 AS m, coalesce(host, '') AS h,
             sum(host_cpu_ratio) AS total, count(*) AS n
      FROM logs WHERE event = 'cycle' AND host_cpu_ratio BETWEEN 0 AND 1 GROUP BY 1, 2) AS s
WHERE rollups.minute_ms = s.m AND rollups.host = s.h AND rollups.container_type = ''
""",
    """
INSERT INTO rollups (minute_ms, host, container_type, memory_cycles, cpu_cycles, last_ms)
SELECT (time_ms / 60000) * 60000, host, container_type,
       sum(CASE WHEN memory_n > 0 THEN 1 ELSE 0 END), sum(CASE WHEN cpu_n > 0 THEN 1 ELSE 0 END),
       max(time_ms)
FROM usage WHERE true GROUP BY 1, 2, 3
ON CONFLICT (minute_ms, host, container_type) DO UPDATE SET
    memory_cycles = excluded.memory_cycles, cpu_cycles = excluded.cpu_cycles
""",
]
ROLLUPS_UPSERT = """
INSERT INTO rollups (minute_ms, host, container_type, records, cycles, kills, kill_failed,
                     errors, removals, memory_sum, memory_n, cpu_sum, cpu_n, host_cpu_sum,
                     host_cpu_n, memory_cycles, cpu_cycles, last_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (minute_ms, host, container_type) DO UPDATE SET
    records = records + excluded.records,
    cycles = cycles + excluded.cycles,
    kills = kills + excluded.kills,
    kill_failed = kill_failed + excluded.kill_failed,
    errors = errors + excluded.errors,
    removals = removals + excluded.removals,
    memory_sum = memory_sum + excluded.memory_sum,
    memory_n = memory_n + excluded.memory_n,
    cpu_sum = cpu_sum + excluded.cpu_sum,
    cpu_n = cpu_n + excluded.cpu_n,
    host_cpu_sum = host_cpu_sum + excluded.host_cpu_sum,
    host_cpu_n = host_cpu_n + excluded.host_cpu_n,
    memory_cycles = memory_cycles + excluded.memory_cycles,
    cpu_cycles = cpu_cycles + excluded.cpu_cycles,
    last_ms = max(last_ms, excluded.last_ms)
"""
# Retention deletes the oldest records first: a minute it leaves in part
# keeps its newest records, so its last_ms stands.
ROLLUPS_SUBTRACT = """
UPDATE rollups SET
    records = records - ?, cycles = cycles - ?, kills = kills - ?,
    kill_failed = kill_failed - ?, errors = errors - ?, removals = removals - ?,
    memory_sum = CASE WHEN memory_n = ? THEN 0 ELSE memory_sum - ? END,
    memory_n = memory_n - ?,
    cpu_sum = CASE WHEN cpu_n = ? THEN 0 ELSE cpu_sum - ? END,
    cpu_n = cpu_n - ?,
    host_cpu_sum = CASE WHEN host_cpu_n = ? THEN 0 ELSE host_cpu_sum - ? END,
    host_cpu_n = host_cpu_n - ?,
    memory_cycles = memory_cycles - ?, cpu_cycles = cpu_cycles - ?
WHERE minute_ms = ? AND host = ? AND container_type = ?
"""
ROLLUPS_DROP_EMPTY = (
    "DELETE FROM rollups WHERE minute_ms <= ? AND records <= 0"
    " AND memory_cycles <= 0 AND cpu_cycles <= 0"
)
# Retention takes records in arrival order, so a minute it leaves in part may
# have lost its newest record: last_ms is read back from what is left.
ROLLUPS_RELAST = """
UPDATE rollups SET last_ms = coalesce((
    SELECT max(time_ms) FROM logs
    WHERE coalesce(host, '') = rollups.host AND time_ms >= ? AND time_ms < ? + 60000
      AND coalesce(container_type, '') = rollups.container_type AND event != 'alert'), last_ms)
WHERE minute_ms = ? AND host = ? AND container_type = ?
"""
# Host totals: whole minutes from the rollups, the records of the partial
# minute at the window's start from the records (at most one minute of them).
HOST_TOTALS_ROLLUPS = """
SELECT host, sum(records), sum(cycles), sum(kills), sum(kill_failed), sum(errors), max(last_ms)
FROM rollups WHERE minute_ms >= ? GROUP BY 1 ORDER BY 1"""


# A minute's accumulator (Summary.minutes): the rollups' columns in
# ROLLUPS_UPSERT's order after the key, last_ms last.
(M_RECORDS, M_CYCLES, M_KILLS, M_FAILED, M_ERRORS, M_REMOVALS, M_MEMORY, M_MEMORY_N, M_CPU,
 M_CPU_N, M_HOST_CPU, M_HOST_CPU_N, M_MEMORY_CYCLES, M_CPU_CYCLES, M_LAST) = range(15)  # fmt: skip


def new_minute(time_ms: int) -> list[Any]:
    return [0, 0, 0, 0, 0, 0, 0.0, 0, 0.0, 0, 0.0, 0, 0, 0, time_ms]


def rollup_args(key: tuple[int, str, str], acc: list[Any]) -> tuple[Any, ...]:
    return (*key, *acc)


def subtract_args(key: tuple[int, str, str], acc: list[Any]) -> tuple[Any, ...]:
    (records, cycles, kills, failed, errors, removals, mem, mem_n, cpu, cpu_n, host_cpu,
     host_cpu_n, mem_cycles, cpu_cycles, _) = acc  # fmt: skip
    return (records, cycles, kills, failed, errors, removals,
            mem_n, mem, mem_n, cpu_n, cpu, cpu_n, host_cpu_n, host_cpu, host_cpu_n,
            mem_cycles, cpu_cycles, *key)  # fmt: skip


def cycle_changes(before_n: int, after_n: int) -> int:
    """+1 when a usage row gains its first figure of a kind, -1 when it
    loses its last: what the rollups' cycle count of its minute changes by."""
    return (after_n > 0) - (before_n > 0)


def build_rollups(conn: sqlite3.Connection) -> None:
    """The rollups table made and filled from the records and the usage rows;
    the indexes the graphs read before schema 6 dropped."""
    conn.execute(ROLLUPS_SCHEMA)
    conn.execute(ROLLUPS_BACKFILL)
    for statement in ROLLUPS_BACKFILL_6:
        conn.execute(statement)
    conn.execute("DROP INDEX IF EXISTS logs_host_cpu")
    conn.execute("DROP INDEX IF EXISTS usage_time")


def merge_host_totals(
    whole: list[Any], partial: list[Any]
) -> list[tuple[str, int, int, int, int, int, int]]:
    """Adds the partial minute's per-host totals to the whole minutes'."""
    totals: dict[str, list[Any]] = {}
    for host, *counts, last in [*whole, *partial]:
        acc = totals.setdefault(host, [0, 0, 0, 0, 0, None])
        for i, n in enumerate(counts):
            acc[i] += int(n or 0)
        if last is not None and (acc[5] is None or last > acc[5]):
            acc[5] = last
    return [(host, *acc) for host, acc in sorted(totals.items()) if acc[0] > 0]  # type: ignore[misc]


INSERT = """
INSERT OR IGNORE INTO logs (
    id, time_ms, host, cycle, event, container_id, container_name,
    container_type, cpu_ratio, cpu_cores, memory_bytes, memory_ratio,
    received_ms, record, host_cpu_ratio
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
USAGE_UPSERT = """
INSERT INTO usage (host, run_id, cycle, container_type, time_ms, memory_sum, memory_n,
                   cpu_sum, cpu_n, records)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (host, run_id, cycle, container_type) DO UPDATE SET
    time_ms = min(time_ms, excluded.time_ms),
    memory_sum = memory_sum + excluded.memory_sum,
    memory_n = memory_n + excluded.memory_n,
    cpu_sum = cpu_sum + excluded.cpu_sum,
    cpu_n = cpu_n + excluded.cpu_n,
    records = records + excluded.records
RETURNING memory_n, cpu_n, time_ms
"""
COUNTS_UPSERT = """
INSERT INTO counts (event, container_type, n) VALUES (?, ?, ?)
ON CONFLICT (event, container_type) DO UPDATE SET n = n + excluded.n
"""
HOST_TOTALS = """
SELECT coalesce(host, ''), count(*),
       sum(CASE WHEN event = 'cycle' THEN 1 ELSE 0 END),
       sum(CASE WHEN event = 'kill' THEN 1 ELSE 0 END),
       sum(CASE WHEN event = 'kill_failed' THEN 1 ELSE 0 END),
       sum(CASE WHEN event = 'error' THEN 1 ELSE 0 END), max(time_ms)
FROM logs WHERE {where} GROUP BY 1 ORDER BY 1"""
RUNS_UPSERT = """
INSERT INTO runs (host, run_id, first_ms, last_ms) VALUES (?, ?, ?, ?)
ON CONFLICT (host, run_id) DO UPDATE SET
    first_ms = min(first_ms, excluded.first_ms),
    last_ms = max(last_ms, excluded.last_ms)
"""
HOSTS_UPSERT = """
INSERT INTO hosts (host, last_received_ms) VALUES (?, ?)
ON CONFLICT (host) DO UPDATE SET
    last_received_ms = max(last_received_ms, excluded.last_received_ms)
"""
# Retention: what a deleted record contributed, subtracted in its transaction.
USAGE_SUBTRACT = """
UPDATE usage SET
    memory_sum = CASE WHEN memory_n = ? THEN 0 ELSE memory_sum - ? END,
    memory_n = memory_n - ?,
    cpu_sum = CASE WHEN cpu_n = ? THEN 0 ELSE cpu_sum - ? END,
    cpu_n = cpu_n - ?,
    records = records - ?
WHERE host = ? AND run_id = ? AND cycle = ? AND container_type = ?
RETURNING records, time_ms, memory_n, cpu_n
"""
# The earliest record left of a summary row whose first records were deleted;
# the remaining ones come right after the deleted ones in time order.
# Retention takes records in arrival order, not by time: a run it touched is
# dropped when none of its records is left, else its span is read back.
RUN_SPAN = "SELECT first_ms, last_ms FROM runs WHERE host = ? AND run_id = ?"
RUN_DELETE = "DELETE FROM runs WHERE host = ? AND run_id = ?"
RUN_RESPAN = "UPDATE runs SET first_ms = ?, last_ms = ? WHERE host = ? AND run_id = ?"
# The run's earliest (latest) record left: what is left lies within the run's
# old span, so the time index is walked from the old first (last) record and
# stops at the run's first match: a few rows, not a scan of every record.
RUN_LEFT = f"""
SELECT time_ms FROM logs INDEXED BY logs_time
WHERE time_ms {{cmp}} ? AND coalesce(host, '') = ? AND {RUN_EXPR} = ?
ORDER BY time_ms {{order}} LIMIT 1
"""
# A usage row's first record left, from the oldest taken on.
USAGE_FIRST_LEFT = f"""
SELECT min(time_ms) FROM (
    SELECT time_ms FROM logs INDEXED BY logs_time
    WHERE time_ms >= ? AND coalesce(host, '') = ? AND cycle = ? AND container_type = ?
      AND event IN ('keep', 'kill', 'would_kill', 'kill_failed') AND {RUN_EXPR} = ?
    ORDER BY time_ms LIMIT 1
) AS first_left
"""

READ_POOL_SIZE = 8
CHECKPOINT_EVERY_SECONDS = 1.0  # at most this long between background checkpoints
WAL_RESTART_FRAMES = 4096  # a WAL this long (16 MiB) is started over once copied
RESTART_WAIT_MS = 200  # how long a restart waits for readers before it gives up
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024  # the WAL is truncated to this after checkpoints
VACUUM_PAGES = 2048  # pages given back per incremental_vacuum step (8 MiB)


class StorageError(Exception):
    """The database could not be written (disk full, read-only, I/O error)."""


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
            name = self.container
            if _is_id_prefix(name):
                # A range, not LIKE, so the container-id index serves it:
                # every id with the prefix sorts below prefix + 'g'.
                clauses.append(
                    "(container_name = ? OR container_id = ?"
                    " OR (container_id >= ? AND container_id < ?))"
                )
                args += [name, name, name, name + "g"]
            else:
                clauses.append("(container_name = ? OR container_id = ?)")
                args += [name, name]
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
        return (" AND ".join(clauses) or "1 = 1"), args


def _is_id_prefix(text: str) -> bool:
    """A short container id (12+ hex digits) also matches the full id."""
    return 12 <= len(text) < 64 and all(c in "0123456789abcdef" for c in text)


@dataclass
class Counters:
    """Running totals for the live page, mirrored from the ``counts`` table."""

    total: int = 0
    by_event: dict[str, int] = field(default_factory=dict)
    kills_by_type: dict[str, int] = field(default_factory=dict)
    last_time_ms: int | None = None
    last_cycle: dict[str, Any] | None = None
    last_cycle_ms: int | None = None
    alerts: AlertBoard = field(default_factory=AlertBoard)

    def count(self, event: str, container_type: str | None, n: int) -> None:
        """Adds ``n`` records (negative when records are deleted)."""
        self.total += n
        self.by_event[event] = self.by_event.get(event, 0) + n
        if self.by_event[event] <= 0:
            del self.by_event[event]
        if event == "kill":
            kind = container_type or "unknown"
            self.kills_by_type[kind] = self.kills_by_type.get(kind, 0) + n
            if self.kills_by_type[kind] <= 0:
                del self.kills_by_type[kind]

    def add(self, record: LogRecordIn | AlertRecord, raw: dict[str, Any]) -> None:
        self.count(record.event, record.container_type, 1)
        if isinstance(record, AlertRecord):
            self.alerts.note(record)
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
            "alerts_firing": self.alerts.firing(),
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


Record = LogRecordIn | AlertRecord


def record_row(rec: Record, raw: dict[str, Any], received_ms: int) -> tuple[Any, ...]:
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
        rec.details.host_cpu_ratio if rec.event == "cycle" and rec.details else None,
    )


@dataclass
class Summary:
    """What one transaction's records add to (or take from) the summary tables."""

    usage: dict[tuple[str, str, int, str], list[Any]] = field(default_factory=dict)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    runs: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    hosts: dict[str, int] = field(default_factory=dict)
    minutes: dict[tuple[int, str, str], list[Any]] = field(default_factory=dict)

    def add(
        self,
        host: str,
        run: str,
        cycle: int,
        event: str,
        ctype: str | None,
        time_ms: int,
        memory: int | None,
        cpu: float | None,
        host_cpu: float | None = None,
    ) -> None:
        key = (event, ctype or "")
        self.counts[key] = self.counts.get(key, 0) + 1
        if run:
            span = self.runs.setdefault((host, run), [time_ms, time_ms])
            span[0] = min(span[0], time_ms)
            span[1] = max(span[1], time_ms)
        if event in USAGE_EVENTS and ctype is not None:
            acc = self.usage.setdefault((host, run, cycle, ctype), [time_ms, 0.0, 0, 0.0, 0, 0])
            acc[0] = min(acc[0], time_ms)
            if memory is not None:
                acc[1] += float(memory)
                acc[2] += 1
            if cpu is not None:
                acc[3] += cpu
                acc[4] += 1
            acc[5] += 1
        if event != "alert":
            self._add_minute(host, event, ctype, time_ms, memory, cpu, host_cpu)

    def _add_minute(
        self,
        host: str,
        event: str,
        ctype: str | None,
        time_ms: int,
        memory: int | None,
        cpu: float | None,
        host_cpu: float | None,
    ) -> None:
        acc = self.minute(time_ms, host, ctype or "")
        acc[M_RECORDS] += 1
        acc[M_CYCLES] += event == "cycle"
        acc[M_KILLS] += event == "kill"
        acc[M_FAILED] += event == "kill_failed"
        acc[M_ERRORS] += event == "error"
        acc[M_REMOVALS] += event == "remove"
        if event in USAGE_EVENTS:
            if memory is not None:
                acc[M_MEMORY] += float(memory)
                acc[M_MEMORY_N] += 1
            if cpu is not None:
                acc[M_CPU] += cpu
                acc[M_CPU_N] += 1
        if event == "cycle" and host_cpu is not None and 0 <= host_cpu <= 1:
            acc[M_HOST_CPU] += host_cpu
            acc[M_HOST_CPU_N] += 1

    def minute(self, time_ms: int, host: str, ctype: str) -> list[Any]:
        """The accumulator of the minute holding ``time_ms``, made on first use."""
        acc = self.minutes.setdefault(
            (time_ms - time_ms % MINUTE_MS, host, ctype), new_minute(time_ms)
        )
        acc[M_LAST] = max(acc[M_LAST], time_ms)
        return acc

    def move_cycles(
        self, key: tuple[str, str, int, str], from_ms: int, to_ms: int, memory_n: int, cpu_n: int
    ) -> None:
        """In a Summary of what retention takes: a usage row that now starts
        at ``to_ms`` (its first records went) counts in that minute."""
        if from_ms - from_ms % MINUTE_MS != to_ms - to_ms % MINUTE_MS:
            self.count_cycles(key, from_ms, memory_n > 0, cpu_n > 0)
            self.count_cycles(key, to_ms, -(memory_n > 0), -(cpu_n > 0))

    def usage_written(
        self, key: tuple[str, str, int, str], memory_n: int, cpu_n: int, time_ms: int
    ) -> None:
        """Usage row ``key`` now holds ``memory_n`` and ``cpu_n`` figures after
        this Summary's were added to it: a figure it gained first counts its
        cycle in the minute it starts (``time_ms``)."""
        acc = self.usage[key]
        self.count_cycles(
            key,
            time_ms,
            cycle_changes(memory_n - acc[2], memory_n),
            cycle_changes(cpu_n - acc[4], cpu_n),
        )

    def usage_taken(
        self, key: tuple[str, str, int, str], memory_n: int, cpu_n: int, time_ms: int
    ) -> None:
        """In a Summary of what retention takes: usage row ``key`` keeps
        ``memory_n`` and ``cpu_n`` figures; a figure it lost last takes its
        cycle out of its minute."""
        acc = self.usage[key]
        self.count_cycles(
            key,
            time_ms,
            -cycle_changes(memory_n + acc[2], memory_n),
            -cycle_changes(cpu_n + acc[4], cpu_n),
        )

    def count_cycles(
        self, key: tuple[str, str, int, str], time_ms: int, memory: int, cpu: int
    ) -> None:
        """A usage row ``key`` (which started at ``time_ms``) gained (> 0) or
        lost (< 0) its memory or CPU figures: its minute's cycle counts move."""
        if memory or cpu:
            acc = self.minute(time_ms, key[0], key[3])
            acc[M_MEMORY_CYCLES] += memory
            acc[M_CPU_CYCLES] += cpu


@dataclass
class _Job:
    """One request's records on their way to a (group) commit."""

    records: Sequence[tuple[Record, dict[str, Any]]]
    rows: list[tuple[Any, ...]]
    stored: list[dict[str, Any]] = field(default_factory=list)
    added: list[tuple[Record, dict[str, Any]]] = field(default_factory=list)
    error: Exception | None = None
    done: bool = False

    def fail(self, error: Exception) -> None:
        self.error = error
        self.stored = []
        self.added = []


def is_postgres_url(locator: Path | str) -> bool:
    return isinstance(locator, str) and locator.startswith(("postgresql://", "postgres://"))


def connect(path: Path | str, synchronous: str = "FULL", *, read_only: bool = False) -> Any:
    """A connection as this module uses them (autocommit; the caller BEGINs):
    SQLite for a path, PostgreSQL (psycopg) for a ``postgresql://`` URL (the
    render process opens its own this way)."""
    if is_postgres_url(path):
        import psycopg  # only where PostgreSQL is used

        pg = psycopg.connect(str(path), autocommit=True)
        if read_only:
            pg.execute("SET default_transaction_read_only = on")
        return pg
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    if read_only:
        conn.execute("PRAGMA query_only=1")
    return conn


class SharedReads(ABC):
    """The reads both engines answer with the same queries (the shared layer
    below), on the two ways each engine gives to run them."""

    @abstractmethod
    def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """The rows of one query of the shared layer (SQLite's text)."""

    @abstractmethod
    def _with_conn(self, fn: Any, *args: Any) -> Any:
        """``fn(connection, *args)`` on one of the engine's connections."""

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
            where += " AND (time_ms, id) < (?, ?)"
            args += [before[0], before[1]]
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
                extra = " AND (time_ms, id) > (?, ?)"
                extra_args = [after[0], after[1]]
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
        # Two subqueries: each is one index lookup; min() and max() in one
        # SELECT would read the whole index.
        row = self._fetch(
            "SELECT (SELECT min(time_ms) FROM logs), (SELECT max(time_ms) FROM logs)"
        )[0]
        return row[0], row[1]

    def hosts(self) -> list[tuple[str, int]]:
        """(host, last record received, epoch ms) for every host."""
        return self._fetch("SELECT host, last_received_ms FROM hosts ORDER BY host")

    def host_totals(self, since_ms: int | None) -> list[tuple[str, int, int, int, int, int, int]]:
        """Per host, gestor's records (alerts left out) since ``since_ms`` (all
        when None): (host, records, cycles, kills, kill failures, errors, last
        record's time in epoch ms), ordered by host. From the per-minute
        rollups, and the records of the partial first minute."""
        return host_totals(self._fetch, since_ms)

    def usage_series(
        self, column: str, since_ms: int, until_ms: int, bucket_ms: int, host: str | None = None
    ) -> list[tuple[int, str, float]]:
        return self._with_conn(usage_series, column, since_ms, until_ms, bucket_ms, host)

    def host_cpu_series(
        self, since_ms: int, until_ms: int, bucket_ms: int, host: str | None = None
    ) -> list[tuple[int, float]]:
        return self._with_conn(host_cpu_series, since_ms, until_ms, bucket_ms, host)

    def kill_series(
        self, since_ms: int, until_ms: int, bucket_ms: int, host: str | None = None
    ) -> list[tuple[int, str, int]]:
        return self._with_conn(kill_series, since_ms, until_ms, bucket_ms, host)

    def runs(
        self, since_ms: int, until_ms: int, host: str | None = None
    ) -> list[tuple[str, str, int, int]]:
        return self._with_conn(runs, since_ms, until_ms, host)


class Database(SharedReads):
    """The log store. Thread-safe: FastAPI runs sync work in a thread pool."""

    engine = "sqlite"

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
        # Bumped after every commit that changed the records: the graph cache's key.
        self.generation = 0
        self._writer = connect(path, synchronous)
        self._open()
        self.counters = self._load_counters()
        self._checkpoint_wanted = threading.Event()
        # Checkpoints off the commit path (see _checkpoint_loop).
        self._writer.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="checkpointer", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        """Copies the WAL into the database file off the commit path.

        With SQLite's automatic checkpoints, the commit that crosses 1,000 WAL
        pages also copies them into the database file and fsyncs it: that
        request waits tens of milliseconds more. Here a thread of its own does
        it (PASSIVE: writers keep appending meanwhile, readers are not
        waited for), soon after commits, on its own connection."""
        conn = connect(self.path, self.synchronous)
        conn.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
        try:
            while not self._closed:
                self._checkpoint_wanted.wait(CHECKPOINT_EVERY_SECONDS)
                self._checkpoint_wanted.clear()
                if self._closed:
                    break
                try:
                    self._checkpoint(conn)
                except sqlite3.Error as exc:  # e.g. disk full; the next round retries
                    log.warning("checkpoint failed: %s", exc)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        _, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames >= WAL_RESTART_FRAMES and copied == frames:
            # Everything is copied, but under a steady stream of writes the
            # writer never finds the WAL finished when it begins, so the WAL
            # would only grow. With the writer held for a moment (the copy is
            # done: only readers still on the old WAL are waited for, briefly),
            # RESTART makes the next transaction start the WAL over, and
            # journal_size_limit trims the file.
            with self._write_lock:
                conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()

    # -- schema -------------------------------------------------------------

    def _open(self) -> None:
        conn = self._writer
        fresh = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
        if fresh:
            # Must precede the first table: freed pages can then be given back.
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(f"cannot switch {self.path} to WAL mode (got {mode!r})")
        conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} has schema version {version}, newer than this service's"
                f" {SCHEMA_VERSION}: run a newer logger image"
            )
        started = time.monotonic()
        self._migrate(version)
        if fresh:
            return
        log.warning(
            "migrated %s from schema %d to %d in %.1f s",
            self.path,
            version,
            SCHEMA_VERSION,
            time.monotonic() - started,
        )
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
            self._convert_to_incremental_vacuum()

    @contextlib.contextmanager
    def _schema_change(self) -> Iterator[sqlite3.Connection]:
        """The writer in one IMMEDIATE transaction that ends at SCHEMA_VERSION,
        or is rolled back whole."""
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _rebuild_rollups(self, arrival_index: bool) -> None:
        """Schema 4 or 5 -> 7: the rollups rebuilt with the graphs' columns
        (and, from 4, the arrival index retention reads)."""
        with self._schema_change() as conn:
            if arrival_index:
                for statement in LOGS_INDEXES.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute("DROP TABLE rollups")
            build_rollups(conn)

    def _rekey_rollups(self) -> None:
        """Schema 6 -> 7: the rollups' rows copied under the new key."""
        with self._schema_change() as conn:
            conn.execute("ALTER TABLE rollups RENAME TO rollups_6")
            conn.execute(ROLLUPS_SCHEMA)
            columns = ", ".join(row[1] for row in conn.execute("PRAGMA table_info(rollups_6)"))
            conn.execute(f"INSERT INTO rollups ({columns}) SELECT {columns} FROM rollups_6")
            conn.execute("DROP TABLE rollups_6")

    def _migrate(self, version: int) -> None:
        """Brings an older database (or a new file) to SCHEMA_VERSION, atomically.

        Version 0 kept the graphs' summary per (host, cycle, container type):
        after a gestor restart new cycles were added into old rows. It is
        rebuilt per run from the records, with the counters, runs and hosts.
        """
        if version in (4, 5):  # no rebuild of the side tables but the rollups
            self._rebuild_rollups(arrival_index=version == 4)
            return
        if version == 6:
            self._rekey_rollups()
            return
        with self._schema_change() as conn:
            for statement in LOGS_SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(logs)")}
            if "host_cpu_ratio" not in columns:
                conn.execute("ALTER TABLE logs ADD COLUMN host_cpu_ratio REAL")
                conn.execute(HOST_CPU_BACKFILL)
            for statement in LOGS_INDEXES.split(";"):
                if statement.strip():
                    conn.execute(statement)
            for table in ("usage", "counts", "runs", "hosts", "meta", "rollups"):
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in SUMMARY_SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            for statement in BACKFILL:
                conn.execute(statement)
            build_rollups(conn)

    def _convert_to_incremental_vacuum(self) -> None:
        """Databases made before retention existed cannot give pages back until
        a VACUUM switches them to incremental auto-vacuum (once)."""
        started = time.monotonic()
        try:
            self._writer.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._writer.execute("VACUUM")
        except sqlite3.Error as exc:  # e.g. no room for the copy: pages are still reused
            log.warning("could not switch %s to incremental vacuum: %s", self.path, exc)
            return
        log.warning(
            "switched %s to incremental vacuum in %.1f s", self.path, time.monotonic() - started
        )

    # -- connections --------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection from a small pool (worker threads come and go)."""
        with self._pool_lock:
            conn = self._pool.pop() if self._pool else None
        if conn is None:
            conn = connect(self.path, self.synchronous, read_only=True)
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

    def _with_conn(self, fn: Any, *args: Any) -> Any:
        with self._read() as conn:
            return fn(conn, *args)

    def close(self) -> None:
        with self._pool_lock:
            self._closed = True
            for conn in self._pool:
                conn.close()
            self._pool.clear()
        self._checkpoint_wanted.set()
        self._checkpointer.join(timeout=30)
        with self._write_lock:
            self._writer.close()

    # -- writes -------------------------------------------------------------

    def insert(
        self,
        records: Sequence[tuple[Record, dict[str, Any]]],
        received_ms: int | None = None,
    ) -> list[dict[str, Any]]:
        """Stores the records not stored yet; returns those it stored.

        Returns only after the transaction holding them has committed (durable
        per ``synchronous``). Group commit: requests that arrive while another
        one is writing are written together, one savepoint each (a failing
        request undoes only its own records), under a single COMMIT, so
        concurrent senders share the fsync.
        """
        if received_ms is None:  # given only by tests, to age records' arrival
            received_ms = int(time.time() * 1000)
        job = _Job(records, [record_row(rec, raw, received_ms) for rec, raw in records])
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
            changed = False
            for job in jobs:
                for rec, raw in job.added:
                    self.counters.add(rec, raw)
                    changed = True
            if changed:
                self.generation += 1
        finally:
            for job in jobs:
                job.done = True

    @staticmethod
    def _write_job(conn: sqlite3.Connection, job: _Job) -> None:
        summary = Summary()
        for (rec, raw), row in zip(job.records, job.rows, strict=True):
            if conn.execute(INSERT, row).rowcount == 1:
                job.stored.append(raw)
                job.added.append((rec, raw))
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
                if rec.event != ALERT_EVENT:  # an alert is not a record from that host
                    summary.hosts[rec.host] = row[12]
        for key, acc in summary.usage.items():
            summary.usage_written(key, *conn.execute(USAGE_UPSERT, (*key, *acc)).fetchone())
        if summary.counts:
            conn.executemany(COUNTS_UPSERT, [(*k, n) for k, n in summary.counts.items()])
        if summary.runs:
            conn.executemany(RUNS_UPSERT, [(*k, *v) for k, v in summary.runs.items()])
        if summary.hosts:
            conn.executemany(HOSTS_UPSERT, list(summary.hosts.items()))
        if summary.minutes:
            conn.executemany(
                ROLLUPS_UPSERT, [rollup_args(k, v) for k, v in summary.minutes.items()]
            )

    def probe_write(self) -> None:
        """A real write and commit (the health check's); raises when it fails."""
        with self._write_lock:
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('health_probe_ms', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (int(time.time() * 1000),),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # -- retention ----------------------------------------------------------

    def delete_before(
        self,
        cut_ms: int,
        batch: int = 1000,
        pause: float = 0.0,
        stop: threading.Event | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> tuple[int, int]:
        """Deletes every record older than ``cut_ms`` in batches, each one
        transaction, so ingestion goes on between them (``on_batch``
        is told each one's count); returns (records deleted, batches)."""
        deleted = batches = 0
        while stop is None or not stop.is_set():
            n = self.delete_batch(cut_ms, batch)
            if n == 0:
                break
            deleted += n
            batches += 1
            if on_batch is not None:
                on_batch(n)
            if pause:
                time.sleep(pause)
        if deleted:
            self.forget_hosts(cut_ms)
        return deleted, batches

    def delete_batch(self, cut_ms: int, limit: int) -> int:
        """Deletes up to ``limit`` of the oldest records older than ``cut_ms``,
        and what they contributed to the summary tables, in one transaction."""
        with self._write_lock:
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                rows = conn.execute(
                    f"SELECT rowid, time_ms, coalesce(host, ''), cycle, event, container_type,"
                    f" memory_bytes, cpu_ratio, {RUN_EXPR}, host_cpu_ratio"
                    " FROM logs INDEXED BY logs_received"
                    " WHERE received_ms < ? ORDER BY received_ms LIMIT ?",
                    (cut_ms, limit),
                ).fetchall()
                if not rows:
                    conn.execute("COMMIT")
                    return 0
                gone = Summary()
                for _, ms, host, cycle, event, ctype, memory, cpu, run, host_cpu in rows:
                    gone.add(host, run, cycle, event, ctype, ms, memory, cpu, host_cpu)
                conn.execute(
                    "DELETE FROM logs WHERE rowid IN (SELECT value FROM json_each(?))",
                    (json.dumps([r[0] for r in rows]),),
                )
                times = [r[1] for r in rows]
                self._subtract(conn, gone, min(times), max(times))
                for host, run in gone.runs:
                    respan_run(conn, host, run)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            for (event, ctype), n in gone.counts.items():
                self.counters.count(event, ctype or None, -n)
            if self.counters.total == 0:
                self.counters.last_time_ms = None
                self.counters.last_cycle = self.counters.last_cycle_ms = None
            self.generation += 1
            return len(rows)

    @staticmethod
    def _subtract(conn: sqlite3.Connection, gone: Summary, first_ms: int, last_ms: int) -> None:
        """Takes ``gone`` out of the side tables (see ``subtract_summary``)."""
        subtract_summary(conn, gone, first_ms, last_ms)
        for (event, ctype), n in gone.counts.items():
            conn.execute(
                "UPDATE counts SET n = n - ? WHERE event = ? AND container_type = ?",
                (n, event, ctype),
            )
        conn.execute("DELETE FROM counts WHERE n <= 0")

    def forget_hosts(self, cut_ms: int) -> None:
        """Drops hosts whose last record arrived before ``cut_ms``."""
        with self._write_lock:
            self._writer.execute("DELETE FROM hosts WHERE last_received_ms < ?", (cut_ms,))

    def vacuum(self, stop: threading.Event | None = None) -> int:
        """Gives free pages back to the file system, a few MiB per step."""
        freed = 0
        while stop is None or not stop.is_set():
            with self._write_lock:
                free = self._writer.execute("PRAGMA freelist_count").fetchone()[0]
                if free == 0:
                    break
                # executescript steps the pragma to its end; execute() would
                # stop after its first (column-less) row: one page.
                self._writer.executescript(f"PRAGMA incremental_vacuum({VACUUM_PAGES});")
                freed += min(free, VACUUM_PAGES)
        return freed

    def checkpoint(self) -> None:
        """Copies the WAL into the database file (without waiting for readers)."""
        with self._write_lock:
            self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    # -- reads --------------------------------------------------------------

    def _load_counters(self) -> Counters:
        """From the counts table and two index lookups: constant time."""
        conn = self._writer
        counters = Counters()
        for event, ctype, n in conn.execute("SELECT event, container_type, n FROM counts"):
            counters.count(event, ctype or None, n)
        counters.last_time_ms = conn.execute("SELECT max(time_ms) FROM logs").fetchone()[0]
        row = conn.execute(
            "SELECT time_ms, record FROM logs WHERE event = 'cycle' ORDER BY time_ms DESC LIMIT 1"
        ).fetchone()
        if row:
            counters.last_cycle_ms, counters.last_cycle = row[0], json.loads(row[1])
        # Which alerts fire now: their records, oldest first (a few per alert).
        for (record,) in conn.execute(
            "SELECT record FROM logs WHERE event = ? ORDER BY time_ms", (ALERT_EVENT,)
        ):
            counters.alerts.note_stored(json.loads(record))
        return counters

    def ping(self) -> None:
        self._fetch("SELECT 1 FROM logs LIMIT 1")

    def size_bytes(self) -> int:
        """The database file, its WAL and shared-memory files."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(f"{self.path}{suffix}").st_size
        return total


def host_totals(fetch: Any, since_ms: int | None) -> list[tuple[str, int, int, int, int, int, int]]:
    """The host totals on either engine (``fetch(sql, args)`` runs a query of
    the shared layer)."""
    if since_ms is None:
        return merge_host_totals(fetch(HOST_TOTALS_ROLLUPS, [0]), [])
    first_whole = -(-since_ms // MINUTE_MS) * MINUTE_MS
    partial: list[Any] = []
    if first_whole > since_ms:
        partial = fetch(
            HOST_TOTALS.format(where="event != 'alert' AND time_ms >= ? AND time_ms < ?"),
            [since_ms, first_whole],
        )
    return merge_host_totals(fetch(HOST_TOTALS_ROLLUPS, [first_whole]), partial)


# -- the graphs' queries (also run by the render process on its own connection).
# Each takes an optional ``host``: only that host's records (a fleet's log
# service serves every node); None for every host.


def _host_clause(host: str | None) -> tuple[str, list[Any]]:
    return (" AND host = ?", [host]) if host is not None else ("", [])


_INDEX_HINT = re.compile(r"\s+INDEXED BY \w+")


@functools.lru_cache(maxsize=512)
def dialect(sql: str, postgres: bool) -> str:
    """One query text for both engines: written for SQLite (``?``
    placeholders, index hints), turned into PostgreSQL's (``%s``, no hints)
    when asked. Two-argument ``max``/``min`` are not translated: statements
    that use them keep a PostgreSQL text of their own (``greatest``)."""
    if not postgres:
        return sql
    sql = _INDEX_HINT.sub("", sql).replace("%", "%%").replace("?", "%s")
    return sql


def run(conn: Any, sql: str, args: Sequence[Any] = ()) -> list[Any]:
    """Runs a query of the shared layer on either engine's connection."""
    postgres = not isinstance(conn, sqlite3.Connection)
    return conn.execute(dialect(sql, postgres), list(args)).fetchall()


def subtract_summary(conn: sqlite3.Connection, gone: Summary, first_ms: int, last_ms: int) -> None:
    """Takes ``gone`` (records whose times span first_ms..last_ms, taken in
    arrival order, so not the oldest by time) out of the usage rows and the
    rollups (SQLite's retention; PostgreSQL drops whole days instead)."""
    for (host, run_id, cycle, ctype), acc in sorted(gone.usage.items()):
        key = (host, run_id, cycle, ctype)
        _, mem, mem_n, cpu, cpu_n, records = acc
        left = conn.execute(
            USAGE_SUBTRACT, (mem_n, mem, mem_n, cpu_n, cpu, cpu_n, records, *key)
        ).fetchone()
        if left is None:
            continue
        gone.usage_taken(key, left[2], left[3], left[1])
        if left[0] <= 0:
            conn.execute(
                "DELETE FROM usage WHERE host = ? AND run_id = ? AND cycle = ?"
                " AND container_type = ?",
                key,
            )
        elif left[1] <= last_ms:
            # Whatever is left of the row is no older than its old first
            # record, so no older than the oldest taken.
            args = (first_ms, host, cycle, ctype, run_id)
            first = conn.execute(USAGE_FIRST_LEFT, args).fetchone()[0]
            if first is not None:
                conn.execute(
                    "UPDATE usage SET time_ms = ? WHERE host = ? AND run_id = ?"
                    " AND cycle = ? AND container_type = ?",
                    (first, *key),
                )
                gone.move_cycles(key, left[1], first, left[2], left[3])
    for key, acc in sorted(gone.minutes.items()):
        conn.execute(ROLLUPS_SUBTRACT, subtract_args(key, acc))
    if gone.minutes:
        conn.execute(ROLLUPS_DROP_EMPTY, (max(k[0] for k in gone.minutes),))
    for minute, host, ctype in sorted(gone.minutes):
        conn.execute(ROLLUPS_RELAST, (minute, minute, minute, host, ctype))


def respan_run(conn: sqlite3.Connection, host: str, run_id: str) -> None:
    """A run retention took records of: dropped when none is left, else its
    span read back (records go in arrival order, not by time)."""
    span = conn.execute(RUN_SPAN, (host, run_id)).fetchone()
    if span is None:
        return
    first_ms, last_ms = span
    first = conn.execute(RUN_LEFT.format(cmp=">=", order="ASC"), (first_ms, host, run_id))
    first_left = first.fetchone()
    if first_left is None:
        conn.execute(RUN_DELETE, (host, run_id))
        return
    last = conn.execute(RUN_LEFT.format(cmp="<=", order="DESC"), (last_ms, host, run_id))
    last_left = last.fetchone() or first_left
    conn.execute(RUN_RESPAN, (first_left[0], last_left[0], host, run_id))


def usage_series(
    conn: Any,
    column: str,
    since_ms: int,
    until_ms: int,
    bucket_ms: int,
    host: str | None = None,
) -> list[tuple[int, str, float]]:
    """Per bucket and container type: the mean over cycles of the type's total.

    ``column`` is ``memory_bytes`` or ``cpu_ratio``. Each cycle's records are
    summed per type (what all containers of a type used together), then
    averaged over the cycles (of every host and run) in the bucket: the
    rollups' sums over their cycle counts, whole minutes from ``since_ms``
    (buckets are whole minutes) to before ``until_ms``.
    """
    if column == "memory_bytes":
        total, cycles = "memory_sum", "memory_cycles"
    elif column == "cpu_ratio":
        total, cycles = "cpu_sum", "cpu_cycles"
    else:
        raise ValueError(f"no usage series for column {column!r}")
    by_host, host_args = _host_clause(host)
    # Minutes first, in the rollups' key order (no sort of their rows), then
    # the few per-minute rows into buckets.
    sql = f"""
        SELECT (minute_ms - ?) / ? AS b, container_type, sum(total) / sum(cycles)
        FROM (
            SELECT minute_ms, container_type, sum({total}) AS total, sum({cycles}) AS cycles
            FROM rollups
            WHERE minute_ms >= ? AND minute_ms < ? AND container_type != ''{by_host}
            GROUP BY minute_ms, container_type
        ) AS per_minute
        GROUP BY b, container_type HAVING sum(cycles) > 0 ORDER BY b
    """
    return run(conn, sql, [since_ms, bucket_ms, since_ms, until_ms, *host_args])


def host_cpu_series(
    conn: Any, since_ms: int, until_ms: int, bucket_ms: int, host: str | None = None
) -> list[tuple[int, float]]:
    """Per bucket: the mean host CPU ratio the cycle records report (values
    outside 0..1 are left out when summed)."""
    by_host, host_args = _host_clause(host)
    sql = f"""
        SELECT (minute_ms - ?) / ? AS b, sum(total) / sum(n)
        FROM (
            SELECT minute_ms, sum(host_cpu_sum) AS total, sum(host_cpu_n) AS n
            FROM rollups
            WHERE minute_ms >= ? AND minute_ms < ? AND container_type = ''
              AND host_cpu_n > 0{by_host}
            GROUP BY minute_ms
        ) AS per_minute
        GROUP BY b ORDER BY b
    """
    return run(conn, sql, [since_ms, bucket_ms, since_ms, until_ms, *host_args])


def kill_series(
    conn: Any, since_ms: int, until_ms: int, bucket_ms: int, host: str | None = None
) -> list[tuple[int, str, int]]:
    """Per bucket and container type: how many containers were killed."""
    by_host, host_args = _host_clause(host)
    sql = f"""
        SELECT (minute_ms - ?) / ? AS b,
               CASE WHEN container_type = '' THEN 'unknown' ELSE container_type END AS t,
               CAST(sum(n) AS BIGINT)
        FROM (
            SELECT minute_ms, container_type, sum(kills) AS n
            FROM rollups
            WHERE minute_ms >= ? AND minute_ms < ? AND kills > 0{by_host}
            GROUP BY minute_ms, container_type
        ) AS per_minute
        GROUP BY b, t ORDER BY b
    """
    return run(conn, sql, [since_ms, bucket_ms, since_ms, until_ms, *host_args])


def runs(
    conn: sqlite3.Connection, since_ms: int, until_ms: int, host: str | None = None
) -> list[tuple[str, str, int, int]]:
    """gestor runs that started within the window: (host, run_id, first, last).

    PostgreSQL keeps a run's span per day of arrival (one row a day, its
    partitions): a run's first row is the one no other row of it precedes,
    its last record the latest of its rows (both looked up by the key).
    SQLite's one row per run gives the same answer."""
    by_host, host_args = _host_clause(host)
    sql = f"""
        SELECT host, run_id, first_ms,
               (SELECT max(l.last_ms) FROM runs AS l
                WHERE l.host = f.host AND l.run_id = f.run_id)
        FROM runs AS f
        WHERE first_ms BETWEEN ? AND ? AND run_id != ''{by_host}
          AND NOT EXISTS (SELECT 1 FROM runs AS e
                          WHERE e.host = f.host AND e.run_id = f.run_id
                            AND e.first_ms < f.first_ms)
        ORDER BY first_ms, host LIMIT 500
    """
    return run(conn, sql, [since_ms, until_ms, *host_args])
