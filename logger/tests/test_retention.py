"""Retention (issue 12): LOGGER_RETENTION deletes old records in small batches
in the background, gives the space back (incremental vacuum), and leaves the
graphs' summary, the runs and the counters exactly as if the deleted records
had never been stored."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from app.db import Database
from app.routers.logs import parse_records
from tests.factory import now_ms, record, rfc3339, simulate
from tests.server import Server

T0 = 1_795_000_000_000
HOUR = 3_600_000
DAY = 24 * HOUR


def insert(db: Database, records: list[dict], received_ms: int | None = None) -> int:
    stored = 0
    for start in range(0, len(records), 500):
        chunk = records[start : start + 500]
        stored += len(db.insert(parse_records(json.dumps(chunk).encode()), received_ms))
    return stored


def expected_state(path: Path) -> dict[str, list]:
    """Summary tables recomputed from the records that are left."""
    conn = sqlite3.connect(path)
    usage = "event IN ('keep', 'kill', 'would_kill', 'kill_failed')"
    run = (
        "CASE WHEN json_type(record, '$.run_id') = 'text'"
        " THEN json_extract(record, '$.run_id') ELSE '' END"
    )
    try:
        return {
            "usage": conn.execute(
                f"SELECT host, {run}, cycle, container_type, min(time_ms),"
                " total(memory_bytes), count(memory_bytes), total(cpu_ratio), count(cpu_ratio),"
                " count(*) FROM logs WHERE event IN ('keep', 'kill', 'would_kill', 'kill_failed')"
                " AND container_type IS NOT NULL GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
            ).fetchall(),
            "counts": conn.execute(
                "SELECT event, coalesce(container_type, ''), count(*) FROM logs"
                " GROUP BY 1, 2 ORDER BY 1, 2"
            ).fetchall(),
            "runs": conn.execute(
                f"SELECT host, {run}, min(time_ms), max(time_ms) FROM logs"
                f" WHERE {run} != '' GROUP BY 1, 2 ORDER BY 1, 2"
            ).fetchall(),
            "rollups": conn.execute(
                "SELECT time_ms / 60000 * 60000, coalesce(host, ''),"
                " coalesce(container_type, ''), count(*), sum(event = 'cycle'),"
                " sum(event = 'kill'), sum(event = 'kill_failed'), sum(event = 'error'),"
                f" sum(event = 'remove'), total(iif({usage}, memory_bytes, NULL)),"
                f" count(iif({usage}, memory_bytes, NULL)), total(iif({usage}, cpu_ratio, NULL)),"
                f" count(iif({usage}, cpu_ratio, NULL)), max(time_ms),"
                " total(iif(event = 'cycle' AND host_cpu_ratio BETWEEN 0 AND 1,"
                " host_cpu_ratio, NULL)),"
                " count(iif(event = 'cycle' AND host_cpu_ratio BETWEEN 0 AND 1, 1, NULL)),"
                # The cycles per type: usage rows (recomputed as above) that
                # start in the minute, with a memory (CPU) figure.
                " (SELECT count(*) FROM (SELECT min(u.time_ms) AS t, count(u.memory_bytes) AS m"
                f"  FROM logs u WHERE u.{usage} AND u.container_type IS NOT NULL"
                "   AND u.host = logs.host AND u.container_type = logs.container_type"
                f"  GROUP BY u.host, {run.replace('record', 'u.record')}, u.cycle,"
                "   u.container_type) WHERE t / 60000 = logs.time_ms / 60000 AND m > 0),"
                " (SELECT count(*) FROM (SELECT min(u.time_ms) AS t, count(u.cpu_ratio) AS c"
                f"  FROM logs u WHERE u.{usage} AND u.container_type IS NOT NULL"
                "   AND u.host = logs.host AND u.container_type = logs.container_type"
                f"  GROUP BY u.host, {run.replace('record', 'u.record')}, u.cycle,"
                "   u.container_type) WHERE t / 60000 = logs.time_ms / 60000 AND c > 0)"
                " FROM logs WHERE event != 'alert' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
            ).fetchall(),
        }
    finally:
        conn.close()


def stored_state(path: Path) -> dict[str, list]:
    conn = sqlite3.connect(path)
    try:
        return {
            "usage": conn.execute(
                "SELECT host, run_id, cycle, container_type, time_ms, memory_sum, memory_n,"
                " cpu_sum, cpu_n, records FROM usage ORDER BY 1, 2, 3, 4"
            ).fetchall(),
            "counts": conn.execute(
                "SELECT event, container_type, n FROM counts ORDER BY 1, 2"
            ).fetchall(),
            "runs": conn.execute(
                "SELECT host, run_id, first_ms, last_ms FROM runs ORDER BY 1, 2"
            ).fetchall(),
            "rollups": conn.execute("SELECT * FROM rollups ORDER BY 1, 2, 3").fetchall(),
        }
    finally:
        conn.close()


def assert_consistent(path: Path) -> None:
    want, got = expected_state(path), stored_state(path)
    assert got["counts"] == want["counts"]
    assert len(got["usage"]) == len(want["usage"])
    for g, w in zip(got["usage"], want["usage"], strict=True):
        assert g[:5] == w[:5]
        assert g[5] == pytest.approx(w[5], rel=1e-9, abs=1e-3)
        assert g[6] == w[6]
        assert g[7] == pytest.approx(w[7], rel=1e-9, abs=1e-9)
        assert g[8:] == w[8:]
    # The per-minute rollups: counts exact, sums to rounding.
    assert len(got["rollups"]) == len(want["rollups"])
    for g, w in zip(got["rollups"], want["rollups"], strict=True):
        assert g[:9] == w[:9]
        assert g[9] == pytest.approx(w[9], rel=1e-9, abs=1e-3)
        assert g[10] == w[10]
        assert g[11] == pytest.approx(w[11], rel=1e-9, abs=1e-9)
        assert g[12:14] == w[12:14]
        assert g[14] == pytest.approx(w[14], rel=1e-9, abs=1e-9)
        assert g[15:] == w[15:]
    # A run's span may only shrink to what is left (its start is history).
    assert [r[:2] for r in got["runs"]] == [r[:2] for r in want["runs"]]


def test_a_retention_pass_deletes_in_batches_and_keeps_every_summary_exact(tmp_path: Path):
    path = tmp_path / "logs.sqlite3"
    db = Database(path)
    try:
        # Retention goes by arrival: the first run's later half arrived early
        # (it goes), its first half late (it stays), so the records taken are
        # not the oldest by time and the side tables must be read back.
        old = simulate(T0 - 3 * DAY, 120, per_type=3, seed=1, run_id="a" * 32)
        early, late = old[len(old) // 2 :], old[: len(old) // 2]
        # A cycle whose records straddle a minute: some arrived before the cut.
        straddle = simulate(T0 - DAY - 5, 1, per_type=3, seed=2, run_id="b" * 32)
        new = simulate(T0, 60, per_type=3, seed=3, run_id="b" * 32)
        legacy = simulate(T0 - 2 * DAY, 30, per_type=1, seed=4, host="legacy")
        cut = T0 - DAY
        insert(db, early + straddle[:4] + legacy, received_ms=cut - 1)
        insert(db, late + straddle[4:] + new, received_ms=T0)
        total = db.counters.total
        deleted, batches = db.delete_before(cut, batch=250)
        old_count = len(early) + 4 + len(legacy)
        assert deleted == old_count
        assert batches >= old_count // 250
        assert db.counters.total == total - deleted
        assert db.counters.total == db._writer.execute("SELECT count(*) FROM logs").fetchone()[0]
        assert_consistent(path)
        assert db.delete_before(cut, batch=250) == (0, 0)
    finally:
        db.close()


def test_deleted_space_is_given_back(tmp_path: Path):
    path = tmp_path / "logs.sqlite3"
    db = Database(path)
    try:
        assert db._writer.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        padding = "x" * 2000
        old = [record(time=rfc3339(T0 - DAY + i), reason=padding) for i in range(2000)]
        insert(db, old, received_ms=T0 - DAY)
        insert(db, [record(time=rfc3339(T0))], received_ms=T0)
        db.checkpoint()
        size_before = path.stat().st_size
        assert db.delete_before(T0 - 1, batch=500)[0] == 2000
        db.vacuum()
        db.checkpoint()
        assert db._writer.execute("PRAGMA freelist_count").fetchone()[0] == 0
        assert path.stat().st_size < size_before / 4, (size_before, path.stat().st_size)
    finally:
        db.close()


@pytest.mark.slow
def test_the_background_task_applies_logger_retention(tmp_path: Path):
    now = now_ms()
    old = simulate(now - 3 * HOUR, 200, per_type=2, seed=5, run_id="c" * 32)  # ~33 min of cycles
    recent = simulate(now - 10 * 60_000, 30, per_type=2, seed=6, run_id="d" * 32)
    env = {
        "LOGGER_RETENTION": "1h",
        "LOGGER_RETENTION_INTERVAL_SECONDS": "0.2",
        "LOGGER_RETENTION_BATCH": "300",
    }
    # The old run arrived 3 hours ago (retention goes by arrival).
    (tmp_path / "data").mkdir()
    before = Database(tmp_path / "data" / "logs.sqlite3")
    try:
        assert insert(before, old, received_ms=now - 3 * HOUR) == len(old)
    finally:
        before.close()
    with Server(tmp_path / "data", **env) as server:
        r = httpx.post(server.url + "/logs", json=recent, timeout=60)
        assert r.status_code == 200
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            stats = httpx.get(server.url + "/stats").json()
            if stats["total"] == len(recent):
                break
            time.sleep(0.05)
        assert stats["total"] == len(recent), stats
        # What is left is exactly the recent run; the graphs and metrics agree.
        exported = httpx.get(server.url + "/logs/export").text.splitlines()
        assert {json.loads(line)["id"] for line in exported} == {r["id"] for r in recent}
        assert_consistent(tmp_path / "data" / "logs.sqlite3")
        metrics = httpx.get(server.url + "/metrics").text
        deleted = metric(metrics, "gestor_logger_retention_deleted_records_total")
        batches = metric(metrics, "gestor_logger_retention_batches_total")
        assert deleted == len(old)
        assert batches >= len(old) / 300
        png = httpx.get(server.url + "/graphs/memory.png", params={"range": "6h"})
        assert png.status_code == 200


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")
