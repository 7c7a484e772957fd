"""Retention by arrival (issue 25): records are kept and expired by when the
service received them (``received_ms``), not by their own ``time``, so a
sender whose clock is days off neither loses its records at once nor keeps
them forever. Both engines."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from app.db import SCHEMA_VERSION, Database
from app.postgres import PostgresDatabase
from app.routers.logs import parse_records
from tests.factory import now_ms, record, rfc3339

HOUR = 3_600_000
DAY = 24 * HOUR
SIDE_TABLES = ("counts", "usage", "runs", "rollups")


def open_db(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Any, Any]:
    """The database and a function running one query on it."""
    if name == "sqlite":
        db = Database(tmp_path / "logs.sqlite3")
        return db, lambda sql: db._writer.execute(sql).fetchall()
    url = request.getfixturevalue("pg_cluster").database()
    pg = PostgresDatabase(url)

    def query(sql: str) -> list[Any]:
        with psycopg.connect(url) as conn:
            return conn.execute(sql).fetchall()

    return pg, query


def store(db: Any, records: list[dict], received_ms: int) -> None:
    stored = db.insert(parse_records(json.dumps(records).encode()), received_ms=received_ms)
    assert len(stored) == len(records)


@pytest.mark.parametrize("name", ["sqlite", "postgresql"])
def test_records_expire_by_arrival_not_by_their_own_time(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    now = now_ms()
    run = {"run_id": "e" * 32, "event": "keep", "container_type": "cpu", "cycle": 1}
    past = record(time=rfc3339(now - 30 * DAY), memory_bytes=100, **run)
    future = record(time=rfc3339(now + 30 * DAY), memory_bytes=300, **run)
    late = record(time=rfc3339(now), memory_bytes=7)  # on time, but arrived 3 days ago
    db, query = open_db(name, tmp_path, request)
    try:
        store(db, [late], now - 3 * DAY)
        store(db, [past, future], now - 2 * HOUR)
        assert db.counters.total == 3

        db.delete_before(now - DAY)  # a day's retention: only the late arrival goes
        ids = {r[0] for r in query("SELECT id FROM logs")}
        assert ids == {past["id"], future["id"]}
        assert db.counters.total == 2
        assert query("SELECT first_ms, last_ms FROM runs") == [(now - 30 * DAY, now + 30 * DAY)]
        assert sum(r[0] for r in query("SELECT records FROM rollups")) == 2
        assert sum(r[0] for r in query("SELECT n FROM counts")) == 2

        db.delete_before(now - HOUR)  # their arrival has aged out: both go
        assert query("SELECT count(*) FROM logs") == [(0,)]
        assert db.counters.total == 0
        for table in SIDE_TABLES:
            left = query(f"SELECT * FROM {table}")
            if table == "counts":  # PostgreSQL's sharded counters may keep zero rows
                left = [r for r in left if r[-1] != 0]
            assert left == [], (table, left)
    finally:
        db.close()


def test_schema_4_gets_the_arrival_index_without_a_rebuild(tmp_path: Path) -> None:
    """SQLite 4 -> 7 adds the (received_ms, id) index and rebuilds only the
    rollups (schema 6's columns, 7's key): the other side tables, which a full
    migration rebuilds, are left as they were."""
    path = tmp_path / "logs.sqlite3"
    db = Database(path)
    store(db, [record()], now_ms())
    db.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP INDEX logs_received")
    # Marks only a rebuild from the records would wipe out (counts), and one
    # the rollups' rebuild must (rollups).
    conn.execute("UPDATE counts SET n = 99")
    conn.execute("UPDATE rollups SET records = 99")
    conn.execute("PRAGMA user_version=4")
    conn.commit()
    conn.close()
    Database(path).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        index = "SELECT name FROM sqlite_master WHERE name = 'logs_received'"
        assert conn.execute(index).fetchall() == [("logs_received",)]
        assert conn.execute("SELECT n FROM counts").fetchall() == [(99,)]
        assert conn.execute("SELECT sum(records) FROM rollups").fetchall() == [(1,)]
    finally:
        conn.close()
