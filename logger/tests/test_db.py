"""The storage layer: WAL and synchronous settings, the graphs' usage roll-up."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from app.db import BACKFILL, Database
from app.routers.logs import parse_records
from tests.factory import record, simulate

T0 = 1_795_000_000_000


def insert(db: Database, records: list[dict]) -> int:
    return len(db.insert(parse_records(json.dumps(records).encode())))


def usage_rows(db: Database) -> list[tuple]:
    """The stored graph summary, checked against one rebuilt from the records."""
    conn = sqlite3.connect(db.path)
    columns = "host, run_id, cycle, container_type, time_ms, memory_sum, memory_n, cpu_sum, cpu_n"
    try:
        stored = conn.execute(
            f"SELECT {columns}, records FROM usage ORDER BY 1, 2, 3, 4"
        ).fetchall()
        conn.execute("CREATE TEMP TABLE expected AS SELECT * FROM usage WHERE 0")
        conn.execute(BACKFILL[0].replace("INSERT INTO usage", "INSERT INTO temp.expected"))
        expected = conn.execute(
            f"SELECT {columns}, records FROM temp.expected ORDER BY 1, 2, 3, 4"
        ).fetchall()
    finally:
        conn.close()
    assert len(stored) == len(expected)
    for got, want in zip(stored, expected, strict=True):
        assert got[:5] == want[:5]
        assert got[5] == pytest.approx(want[5])
        assert got[6] == want[6]
        assert got[7] == pytest.approx(want[7])
        assert got[8:] == want[8:]
    return stored


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_database_is_wal_with_the_asked_synchronous(tmp_path: Path, synchronous: str):
    db = Database(tmp_path / "logs.sqlite3", synchronous)
    try:
        assert db._writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        level = db._writer.execute("PRAGMA synchronous").fetchone()[0]
        assert level == {"FULL": 2, "NORMAL": 1}[synchronous]
    finally:
        db.close()


def test_usage_rollup_matches_the_records_after_retries_and_overlaps(tmp_path: Path):
    db = Database(tmp_path / "logs.sqlite3")
    try:
        recs = simulate(T0, 60, per_type=3, seed=5)
        # Batches that overlap, arrive out of order and are retried.
        insert(db, recs[300:])
        insert(db, recs[:350])
        insert(db, recs[100:200])
        rows = usage_rows(db)
        assert len(rows) == 60 * 4  # one row per cycle and type
        partial = [record(cycle=1, container_type="ram", memory_bytes=None, cpu_ratio=0.5)]
        insert(db, partial)
        usage_rows(db)
    finally:
        db.close()


def test_usage_rollup_is_rebuilt_for_an_older_database(tmp_path: Path):
    path = tmp_path / "logs.sqlite3"
    db = Database(path)
    insert(db, simulate(T0, 20, per_type=2, seed=9))
    before = usage_rows(db)
    db.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE usage")
    conn.execute("PRAGMA user_version=0")  # as before the summary existed
    conn.commit()
    conn.close()
    db = Database(path)
    try:
        assert usage_rows(db) == before
    finally:
        db.close()


def test_a_failed_transaction_stores_nothing_and_keeps_counters_right(tmp_path: Path):
    db = Database(tmp_path / "logs.sqlite3")
    try:
        insert(db, [record(event="kill", container_type="io")])
        db._writer.execute(
            "CREATE TEMP TRIGGER boom BEFORE INSERT ON logs WHEN NEW.id = 'boom' "
            "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
        )
        batch = [record(event="kill", container_type="cpu"), record(id="boom")]
        with pytest.raises(sqlite3.IntegrityError, match="disk on fire"):
            insert(db, batch)
        assert db.counters.total == 1
        assert db.counters.kills_by_type == {"io": 1}
        n = sqlite3.connect(db.path).execute("SELECT count(*) FROM logs").fetchone()[0]
        assert n == 1
        # The connection is usable afterwards.
        assert insert(db, batch[:1]) == 1
        assert db.counters.total == 2
    finally:
        db.close()


def open_db_files(path: Path) -> int:
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            if str(path) in str(fd.readlink()):
                count += 1
        except OSError:
            pass
    return count


def test_reads_from_ever_new_threads_do_not_leak_connections(tmp_path: Path):
    import threading

    from app.db import READ_POOL_SIZE, Filters

    db = Database(tmp_path / "logs.sqlite3")
    try:
        insert(db, [record() for _ in range(10)])
        for _ in range(5):  # threads that come and go, like a pool's idle workers
            threads = [threading.Thread(target=lambda: db.page(Filters(), 5)) for _ in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert len(db._pool) <= READ_POOL_SIZE
        # The writer plus at most the pool, each with its database and WAL files.
        assert open_db_files(db.path) <= 3 * (READ_POOL_SIZE + 1)
    finally:
        db.close()
    assert open_db_files(tmp_path / "logs.sqlite3") == 0


def test_concurrent_requests_share_one_commit_and_fail_alone(tmp_path: Path):
    import threading

    db = Database(tmp_path / "logs.sqlite3")
    statements: list[str] = []
    db._writer.set_trace_callback(statements.append)
    db._writer.execute(
        "CREATE TEMP TRIGGER boom BEFORE INSERT ON logs WHEN NEW.id = 'boom' "
        "BEGIN SELECT RAISE(ABORT, 'bad record'); END"
    )
    batches = [[record() for _ in range(10)] for _ in range(6)]
    batches[3].append(record(id="boom"))
    results: dict[int, object] = {}

    def send(index: int) -> None:
        try:
            results[index] = insert(db, batches[index])
        except sqlite3.Error as exc:
            results[index] = exc

    try:
        # Hold the writer so that all six requests queue up, then let them go.
        with db._write_lock:
            threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
            for t in threads:
                t.start()
            for _ in range(500):
                if len(db._pending) == 6:
                    break
                threading.Event().wait(0.01)
            assert len(db._pending) == 6
            statements.clear()
        for t in threads:
            t.join(timeout=10)
        assert statements.count("COMMIT") == 1
        assert isinstance(results[3], sqlite3.IntegrityError)
        assert [results[i] for i in (0, 1, 2, 4, 5)] == [10] * 5
        assert db.counters.total == 50
        n = sqlite3.connect(db.path).execute("SELECT count(*) FROM logs").fetchone()[0]
        assert n == 50
    finally:
        db.close()


def test_commits_never_checkpoint_a_thread_of_its_own_does(tmp_path: Path):
    """A commit that had to copy the WAL into the database file would wait for
    it (tens of ms, the ingest p99); the checkpointer thread does it instead."""
    import time

    path = tmp_path / "logs.sqlite3"
    db = Database(path)
    try:
        assert db._writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        before = path.stat().st_size
        insert(db, [record(reason="x" * 2000) for _ in range(2000)])  # ~1,500 WAL pages
        deadline = time.monotonic() + 30
        while path.stat().st_size <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size > before, "the WAL was never copied into the database"
    finally:
        db.close()
