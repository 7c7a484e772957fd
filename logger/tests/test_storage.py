"""Storage that stays fast and honest as the table grows (issue 12).

- counters live in a table updated in the same transaction as the records,
  so start-up reads a few rows, never the whole log;
- the container and host filters use an index (EXPLAIN QUERY PLAN);
- /healthz fails when the database cannot be written.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import app.db
from app.db import Database, Filters
from app.routers.logs import parse_records
from tests.factory import expected_series, record, simulate

T0 = 1_795_000_000_000


def insert(db: Database, records: list[dict]) -> int:
    return len(db.insert(parse_records(json.dumps(records).encode())))


def plan(conn: sqlite3.Connection, sql: str, args) -> list[str]:
    return [row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]


def plan_steps(conn: sqlite3.Connection, sql: str) -> list[tuple[int, int, str]]:
    """(id, parent's id, what) of each step of the plan."""
    return [(i, parent, what) for i, parent, _, what in conn.execute("EXPLAIN QUERY PLAN " + sql)]


class Traced:
    """Every statement the app's own connections run, with its arguments' count."""

    def __init__(self, monkeypatch) -> None:
        self.statements: list[str] = []
        real = sqlite3.connect

        def connect(*args, **kwargs):
            conn = real(*args, **kwargs)
            conn.set_trace_callback(self.statements.append)
            return conn

        monkeypatch.setattr(app.db.sqlite3, "connect", connect)


def test_start_up_reads_no_table_scan_of_the_logs(tmp_path: Path, monkeypatch):
    path = tmp_path / "logs.sqlite3"
    db = Database(path)
    insert(db, simulate(T0, 50, per_type=2, seed=1))
    db.close()
    traced = Traced(monkeypatch)
    db = Database(path)
    try:
        assert db.counters.total == 50 * 9
        conn = sqlite3.connect(path)
        scans = []
        for sql in traced.statements:
            if sql.lstrip().upper().startswith(("SELECT", "WITH")):
                steps = [row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
                scans += [(sql, s) for s in steps if s.startswith("SCAN") and "logs" in s]
        conn.close()
        assert scans == [], scans
    finally:
        db.close()


def test_counters_come_from_their_table(tmp_path: Path):
    path = tmp_path / "logs.sqlite3"
    db = Database(path)
    insert(db, [record(event="kill", container_type="io"), record(event="cycle")])
    db.close()
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT event, container_type, n FROM counts ORDER BY 1, 2").fetchall()
    assert rows == [("cycle", "cpu", 1), ("kill", "io", 1)]
    conn.close()
    db = Database(path)
    try:
        assert db.counters.as_dict()["by_event"] == {"cycle": 1, "kill": 1}
        assert db.counters.kills_by_type == {"io": 1}
    finally:
        db.close()


def test_counts_table_is_written_in_the_records_transaction(tmp_path: Path):
    db = Database(tmp_path / "logs.sqlite3")
    try:
        db._writer.execute(
            "CREATE TEMP TRIGGER boom BEFORE INSERT ON logs WHEN NEW.id = 'boom' "
            "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
        )
        with pytest.raises(sqlite3.IntegrityError):
            insert(db, [record(event="kill"), record(id="boom")])
        n = db._writer.execute("SELECT count(*) FROM counts").fetchone()[0]
        assert n == 0
    finally:
        db.close()


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        (Filters(container="cpu-12345678"), "logs_name_time"),
        (Filters(container="ab" * 32), "logs_cid_time"),
        (Filters(container="abcdef012345"), "logs_cid_time"),  # a 12-digit id prefix
        (Filters(host="alpha"), "logs_host_time"),
        (Filters(host="alpha", since_ms=T0), "logs_host_time"),
    ],
)
def test_container_and_host_filters_use_an_index(tmp_path: Path, filters, index):
    db = Database(tmp_path / "logs.sqlite3")
    try:
        insert(db, simulate(T0, 20, per_type=2, seed=3))
        where, args = filters.where()
        for sql in (
            f"SELECT time_ms, id, record FROM logs WHERE {where} "
            "ORDER BY time_ms DESC, id DESC LIMIT 100",
            f"SELECT time_ms, id, record FROM logs WHERE {where} ORDER BY time_ms, id LIMIT 2000",
        ):
            steps = plan(db._writer, sql, args)
            assert any(index in s for s in steps), steps
            assert not any(s.startswith("SCAN logs") for s in steps), steps
    finally:
        db.close()


def test_the_id_prefix_filter_matches_exactly_the_prefixed_ids(client):
    ids = ["abcdef012345" + "0" * 52, "abcdef012345" + "f" * 52, "abcdef012346" + "0" * 52]
    client.post("/logs", json=[record(id=f"r{i}", container_id=c) for i, c in enumerate(ids)])
    got = client.get("/logs", params={"container": "abcdef012345"}).json()["items"]
    assert sorted(r["id"] for r in got) == ["r0", "r1"]


def test_healthz_is_503_when_the_database_cannot_be_written(client):
    assert client.get("/healthz").status_code == 200
    db = client.app.state.db
    # The writer connection refuses writes from now on, as on a volume gone
    # read-only; reads still answer.
    db._writer.execute("PRAGMA query_only=1")
    r = client.get("/healthz")
    assert r.status_code == 503, r.text
    assert "write" in r.json()["detail"]
    assert client.get("/logs").status_code == 200
    # A write that fails is a 503 (retry later), never a 500.
    w = client.post("/logs", json=record())
    assert w.status_code == 503, w.text
    assert "retry-after" in w.headers
    db._writer.execute("PRAGMA query_only=0")
    assert client.get("/healthz").status_code == 200
    assert client.post("/logs", json=record()).status_code == 200


def test_healthz_is_503_when_the_disk_is_almost_full(tmp_path: Path):
    from tests.conftest import make_client

    with make_client(tmp_path, min_free_bytes=2**62) as c:
        r = c.get("/healthz")
        assert r.status_code == 503
        assert "free" in r.json()["detail"]


def test_the_graphs_read_the_rollups_and_match_the_records(tmp_path: Path):
    """Every graph series equals what the records say (two hosts, kills, whole
    minutes and 2-minute buckets), and is read from the rollups' rows of the
    window alone: no scan of the records, nor of the usage rows, and the
    rows are summed per minute in the rollups' key order (no sort of them:
    only the per-minute sums are sorted into buckets)."""
    since = T0 - T0 % 120_000
    records = simulate(since, 40, per_type=2, seed=4, host="alpha", run_id="a" * 32)
    records += simulate(since + 3_000, 33, per_type=3, seed=5, host="beta")
    db = Database(tmp_path / "logs.sqlite3")
    try:
        insert(db, records)
        until = since + 400_000 + 120_000
        for bucket in (60_000, 120_000):
            want = expected_series(records, since, bucket)
            with db._read() as conn:
                traced: list[str] = []  # statements with their values filled in
                conn.set_trace_callback(traced.append)
                got = {
                    "memory": app.db.usage_series(conn, "memory_bytes", since, until, bucket),
                    "cpu": app.db.usage_series(conn, "cpu_ratio", since, until, bucket),
                    "host_cpu": app.db.host_cpu_series(conn, since, until, bucket),
                    "kills": app.db.kill_series(conn, since, until, bucket),
                }
                conn.set_trace_callback(None)
                steps = [step for sql in traced for step in plan(conn, sql, [])]
                trees = [plan_steps(conn, sql) for sql in traced]
            for name in ("memory", "cpu"):
                assert {(b, t): v for b, t, v in got[name]} == pytest.approx(want[name]), name
            assert dict(got["host_cpu"]) == pytest.approx(want["host_cpu"])
            assert {(b, t): n for b, t, n in got["kills"]} == want["kills"]
            assert want["kills"], "the data has kills to draw"
            reads = [step for step in steps if step.startswith(("SEARCH", "SCAN"))]
            tables = [step for step in reads if step != "SCAN per_minute"]
            assert len(tables) == 4, steps
            assert all(step.startswith("SEARCH rollups USING PRIMARY KEY") for step in tables)
            for tree in trees:
                (minutes,) = [i for i, _, what in tree if what == "CO-ROUTINE per_minute"]
                inside = [what for _, parent, what in tree if parent == minutes]
                assert len(inside) == 1, tree  # no "USE TEMP B-TREE" of the rollups' rows
                assert inside[0].startswith("SEARCH rollups USING PRIMARY KEY"), tree
    finally:
        db.close()


def test_schema_6_rollups_are_rekeyed_with_their_rows(tmp_path: Path):
    """SQLite 6 -> 7 copies the rollups under the (minute, type, host) key:
    the same rows, the same series, nothing rebuilt from the records."""
    path = tmp_path / "logs.sqlite3"
    since = T0 - T0 % 60_000
    records = simulate(since, 30, per_type=2, seed=6, host="alpha")
    records += simulate(since + 2_000, 20, per_type=1, seed=7, host="beta")
    db = Database(path)
    insert(db, records)
    db.close()

    def rollups_and_series() -> tuple[list, list]:
        with sqlite3.connect(path) as conn:
            rows = conn.execute("SELECT * FROM rollups ORDER BY minute_ms, host, container_type")
            until = since + 10 * 60_000
            series = [
                app.db.usage_series(conn, "memory_bytes", since, until, 60_000),
                app.db.host_cpu_series(conn, since, until, 60_000),
                app.db.kill_series(conn, since, until, 120_000),
            ]
            return rows.fetchall(), series

    before = rollups_and_series()
    with sqlite3.connect(path) as conn:  # back to schema 6's key
        conn.execute("ALTER TABLE rollups RENAME TO new_key")
        old = app.db.ROLLUPS_SCHEMA.replace(
            "PRIMARY KEY (minute_ms, container_type, host)",
            "PRIMARY KEY (minute_ms, host, container_type)",
        )
        assert old != app.db.ROLLUPS_SCHEMA
        conn.execute(old)
        conn.execute("INSERT INTO rollups SELECT * FROM new_key")
        conn.execute("DROP TABLE new_key")
        conn.execute("UPDATE counts SET n = n + 1000")  # a full rebuild would undo it
        conn.execute("PRAGMA user_version=6")
    Database(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (app.db.SCHEMA_VERSION,)
        table = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'rollups'").fetchone()
        assert "PRIMARY KEY (minute_ms, container_type, host)" in table[0]
        assert conn.execute("SELECT min(n) FROM counts").fetchone()[0] > 1000
    assert rollups_and_series() == before
    assert before[0], "the data has rollups"
    assert all(before[1]), before
