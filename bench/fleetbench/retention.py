"""Retention and the day partitions' migration on a fleet's database (issue 25).

- PostgreSQL, schema 7 -> 8: a database of the last unpartitioned schema,
  filled in SQL with ``records`` gestor-shaped rows (about 1 kB of JSON each)
  that arrived over ``days`` days, migrated to the day partitions (every
  record copied into its arrival day's partition, the side tables rebuilt
  from them): seconds and records per second.
- Retention of one day of arrival: PostgreSQL drops that day's partitions
  whole; SQLite, in the same run, deletes a day of the same size row by row
  (its batches of 1,000, each subtracted from the side tables), the cost
  PostgreSQL's retention had before the partitions. Seconds and the ratio.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import psycopg

from .postgres import Postgres

DAY_MS = 86_400_000
TYPES = ("cpu", "ram", "io", "disk")
# A cycle's 8 records: one cycle record, then 7 container records.
FILL_V7 = f"""
INSERT INTO logs (id, time_ms, host, cycle, event, container_id, container_name,
                  container_type, cpu_ratio, cpu_cores, memory_bytes, memory_ratio,
                  received_ms, record, host_cpu_ratio, run_id)
SELECT md5(i::text), r.ms, 'host-' || (i / 8 %% 1000), i / 8000,
       CASE WHEN i %% 8 = 0 THEN 'cycle' ELSE 'keep' END,
       md5('c' || i %% 8000), 'stress-' || i %% 8000,
       CASE WHEN i %% 8 = 0 THEN NULL ELSE (ARRAY{list(TYPES)})[i %% 4 + 1] END,
       0.1, 0.2, 50000000 + i %% 1000, 0.02, r.ms,
       '{{"id":"' || md5(i::text) || '","pad":"' || repeat('x', 900) || '"}}',
       CASE WHEN i %% 8 = 0 THEN 0.5 END, 'run-' || (i / 8 %% 1000)
FROM generate_series(0, %s - 1) AS i,
     LATERAL (SELECT %s::bigint + i::bigint * %s AS ms) AS r
"""


def postgres(records: int, days: int) -> dict:
    """Schema 7 -> 8 with ``records`` over ``days`` days, then one day dropped."""
    from app.postgres import PostgresDatabase, migrate

    cluster = Postgres().start()
    try:
        url = cluster.create_database("retention")
        migrate(url, target=7)
        first_day = int(time.time() * 1000) // DAY_MS - days
        step = days * DAY_MS // records
        with psycopg.connect(url) as conn:
            conn.execute(FILL_V7, (records, first_day * DAY_MS, step))  # type: ignore[arg-type]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE logs")
            size = conn.execute("SELECT pg_total_relation_size('logs')").fetchone()[0]
        started = time.monotonic()
        migrate(url)
        migration_s = time.monotonic() - started
        db = PostgresDatabase(url)
        try:
            started = time.monotonic()
            dropped, batches = db.delete_before((first_day + 1) * DAY_MS)
            drop_s = time.monotonic() - started
        finally:
            db.close()
    finally:
        cluster.stop()
    return {
        "records": records,
        "days": days,
        "logs_mb": round(size / 2**20),
        "migration_s": round(migration_s, 2),
        "migration_records_per_s": round(records / migration_s),
        "day_dropped_records": dropped,
        "day_dropped_partitions": batches,
        "drop_s": round(drop_s, 3),
    }


def sqlite(records_per_day: int) -> dict:
    """Two days of ``records_per_day`` gestor-shaped records; the first deleted
    by SQLite's retention (row deletes in batches, side tables subtracted)."""
    import logger_bench

    from app.db import Database
    from app.routers.logs import parse_records

    first_day = int(time.time() * 1000) // DAY_MS - 2
    with tempfile.TemporaryDirectory(prefix="fb-ret-") as tmp:
        db = Database(Path(tmp) / "logs.sqlite3", "NORMAL")
        try:
            for day in (first_day, first_day + 1):
                recs = logger_bench.make_records(records_per_day, seed=day)
                for start in range(0, len(recs), 400):
                    body = json.dumps(recs[start : start + 400]).encode()
                    db.insert(parse_records(body), received_ms=day * DAY_MS + start)
            started = time.monotonic()
            deleted, batches = db.delete_before((first_day + 1) * DAY_MS)
            delete_s = time.monotonic() - started
        finally:
            db.close()
    return {
        "records_per_day": records_per_day,
        "deleted": deleted,
        "batches": batches,
        "delete_s": round(delete_s, 2),
    }


def run(records: int, days: int) -> dict:
    print(
        f"\nretention: PostgreSQL schema 7 -> 8 with {records:,} records over {days} days of"
        f" arrival, then one day dropped; SQLite deleting a day of the same size in the same run"
    )
    pg = postgres(records, days)
    print(
        f"  PostgreSQL 7 -> 8: {pg['migration_s']:.1f} s ({pg['migration_records_per_s']:,}"
        f" records/s, logs {pg['logs_mb']:,} MB; 10^7 records at that rate:"
        f" {1e7 / pg['migration_records_per_s']:.0f} s)"
    )
    lite = sqlite(records // days)
    ratio = lite["delete_s"] / max(pg["drop_s"], 1e-6)
    print(
        f"  one day of arrival: PostgreSQL dropped {pg['day_dropped_records']:,} records"
        f" ({pg['day_dropped_partitions']} day) in {pg['drop_s'] * 1000:.0f} ms;"
        f" SQLite deleted {lite['deleted']:,} in {lite['batches']} batches in"
        f" {lite['delete_s']:.1f} s ({ratio:,.0f}x)"
    )
    return {"postgresql": pg, "sqlite": lite, "ratio": round(ratio, 1)}
