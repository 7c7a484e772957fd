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
    # Noon today: PostgreSQL expires whole days of arrival, so the cuts below
    # must not fall within the day the newer records arrived on.
    now = now_ms() // DAY * DAY + 12 * HOUR
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

        db.delete_before(now + DAY)  # a day on, their arrival has aged out: both go
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


def test_postgresql_drops_whole_days_of_arrival(pg_cluster) -> None:
    """On PostgreSQL retention drops the partitions of the days of arrival that
    ended before the cut, every table's at once; a day the cut falls in is
    kept whole (its records older than the cut too), with its hosts. A worker
    that made a dropped day's partitions makes them again when it stores a
    record that arrived that day."""
    url = pg_cluster.database()
    db = PostgresDatabase(url)
    other = PostgresDatabase(url)  # another worker of the same database
    today = now_ms() // DAY * DAY
    try:
        store(db, [record(host="old"), record(host="old")], today - 2 * DAY + HOUR)
        store(other, [record(host="other")], today - 2 * DAY + 2 * HOUR)
        store(db, [record(host="kept")], today - DAY + HOUR)
        store(db, [record(host="new")], today + HOUR)
        gone = (today - 2 * DAY) // DAY
        assert db.stored_days()[:3] == [gone, gone + 1, gone + 2]

        # The cut is 6 h into yesterday: the day before goes, yesterday stays
        # whole (its record arrived at 01:00, before the cut).
        assert db.delete_before(today - DAY + 6 * HOUR) == (3, 1)
        assert gone not in db.stored_days()
        with psycopg.connect(url) as conn:
            for table in ("logs", "usage", "rollups", "counts", "runs"):
                name = f"{table}_d{gone}"
                assert conn.execute("SELECT to_regclass(%s)", (name,)).fetchone() == (None,)
            hosts = [h for (h,) in conn.execute("SELECT host FROM hosts ORDER BY 1")]
        assert hosts == ["kept", "new"]
        assert db.counters.total == 2
        assert {h for h, *_ in db.host_totals(None)} == {"kept", "new"}
        assert db.delete_before(today - DAY + 6 * HOUR) == (0, 0)  # nothing left to drop

        store(other, [record(host="late")], today - 2 * DAY + 3 * HOUR)
        assert gone in db.stored_days()
        assert {h for h, *_ in db.host_totals(None)} == {"kept", "new", "late"}
    finally:
        other.close()
        db.close()


def test_postgresql_stores_a_record_once_across_days(pg_cluster) -> None:
    """A record re-sent the next day of arrival (its first POST's answer was
    lost before midnight) is not stored again, nor twice in one batch."""
    db = PostgresDatabase(pg_cluster.database())
    today = now_ms() // DAY * DAY
    rec, other = record(host="h"), record(host="h")
    try:
        store(db, [rec], today - HOUR)
        again = parse_records(json.dumps([rec, other, other]).encode())
        assert [r["id"] for r in db.insert(again, received_ms=today + HOUR)] == [other["id"]]
        assert db.insert(again, received_ms=today + 2 * HOUR) == []
        assert db.counters.total == 2
        assert db._fetch("SELECT count(*) FROM logs WHERE id = ?", [rec["id"]]) == [(1,)]
    finally:
        db.close()


@pytest.mark.parametrize("name", ["sqlite", "postgresql"])
def test_a_run_whose_records_arrived_on_several_days_is_one_run(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """PostgreSQL keeps a run's span per day of arrival: the graphs' markers
    still get one row per run, its first and last record's times, and only
    for runs that started in the window."""
    today = now_ms() // DAY * DAY
    t0 = today - 2 * HOUR
    run = {"run_id": "f" * 32, "host": "h", "event": "cycle"}
    early = {"run_id": "a" * 32, "host": "h", "event": "cycle"}
    db, _ = open_db(name, tmp_path, request)
    try:
        store(db, [record(time=rfc3339(t0 - HOUR), **early)], today - DAY + HOUR)
        store(db, [record(time=rfc3339(t0 + 60_000), **run)], today - DAY + HOUR)
        store(db, [record(time=rfc3339(t0), **run)], today - DAY + 2 * HOUR)
        store(db, [record(time=rfc3339(t0 + 120_000), **run)], today + HOUR)
        store(db, [record(time=rfc3339(t0 + 180_000), **early)], today + HOUR)
        assert db.runs(t0 - 1, t0 + DAY) == [("h", "f" * 32, t0, t0 + 120_000)]
        assert db.runs(t0 - 2 * HOUR, t0 + DAY) == [
            ("h", "a" * 32, t0 - HOUR, t0 + 180_000),
            ("h", "f" * 32, t0, t0 + 120_000),
        ]
    finally:
        db.close()
