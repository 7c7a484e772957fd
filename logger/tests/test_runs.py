"""Graphs survive gestor restarts (issue 12): the summary is keyed by run.

gestor's cycle counter restarts at 1 on every start while the host stays the
same; every record carries the run's `run_id` (random per start). Records of
older gestors have none: they form one legacy run per host.
"""

from __future__ import annotations

import json
import sqlite3
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from app.db import Database
from app.graphs import marker_times
from app.routers.logs import parse_records
from app.windows import Window
from tests.factory import OLD_SCHEMA, record, rfc3339, simulate

T0 = 1_794_999_960_000  # a whole minute: the graphs' buckets are whole minutes
HOUR = 3_600_000
RUN_A = "a" * 32
RUN_B = "b" * 32
MARKER = "#9467bd"  # the graphs' colour for a run's start


def insert(db: Database, records: list[dict]) -> int:
    return len(db.insert(parse_records(json.dumps(records).encode())))


def series(db: Database, since: int, until: int) -> dict[str, list]:
    return {
        column: db.usage_series(column, since, until, 60_000)
        for column in ("memory_bytes", "cpu_ratio")
    }


def test_a_restart_with_the_same_host_and_cycle_numbers_keeps_both_runs(tmp_path: Path):
    db = Database(tmp_path / "logs.sqlite3")
    try:
        first = simulate(T0, 30, per_type=2, seed=1, run_id=RUN_A)
        insert(db, first)
        window1 = (T0, T0 + 300_000)
        before = series(db, *window1)
        assert len(before["memory_bytes"]) == 5 * 4  # 30 cycles: 5 minutes x 4 types

        # gestor restarts an hour later: cycles 1..30 again, same host.
        second = simulate(T0 + HOUR, 30, per_type=2, seed=2, run_id=RUN_B)
        insert(db, second)
        assert series(db, *window1) == before, "the first run's graph data changed"
        window2 = (T0 + HOUR, T0 + HOUR + 300_000)
        after = series(db, *window2)
        assert len(after["memory_bytes"]) == 5 * 4, "the second run does not appear"
        assert len(after["cpu_ratio"]) == 5 * 4  # 30 cycles: 5 minutes x 4 types
    finally:
        db.close()


def test_records_without_run_id_form_one_legacy_run_per_host(tmp_path: Path):
    db = Database(tmp_path / "logs.sqlite3")
    try:
        insert(db, simulate(T0, 5, per_type=1, seed=1, host="alpha"))
        insert(db, simulate(T0, 5, per_type=1, seed=2, host="beta"))
        rows = db.usage_series("memory_bytes", T0, T0 + 60_000, 60_000)
        # Two hosts, same cycles: each keeps its own rows (averaged per bucket).
        conn = sqlite3.connect(db.path)
        keys = conn.execute("SELECT DISTINCT host, run_id FROM usage ORDER BY 1").fetchall()
        conn.close()
        assert keys == [("alpha", ""), ("beta", "")]
        assert len(rows) == 1 * 4  # 5 cycles: one minute x 4 types, both hosts in each
        assert db.runs(T0 - HOUR, T0 + HOUR) == []  # legacy runs have no known start
    finally:
        db.close()


def test_runs_are_listed_with_their_start(tmp_path: Path):
    db = Database(tmp_path / "logs.sqlite3")
    try:
        insert(db, simulate(T0, 3, per_type=1, run_id=RUN_A))
        insert(db, simulate(T0 + HOUR, 3, per_type=1, seed=2, run_id=RUN_B, host="other"))
        runs = db.runs(T0 - HOUR, T0 + 2 * HOUR)
        assert [(r[0], r[1], r[2]) for r in runs] == [
            ("testhost", RUN_A, T0),
            ("other", RUN_B, T0 + HOUR),
        ]
        assert db.runs(T0 + 1, T0 + HOUR - 1) == []
    finally:
        db.close()


def decode(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return imread(BytesIO(response.content), format="png")


def marker_columns(image: np.ndarray) -> int:
    rgb = np.array([int(MARKER[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    hits = (np.abs(image[:, :, :3] - rgb).max(axis=2) < 0.15).sum(axis=0)
    return int((hits > image.shape[0] * 0.3).sum())  # columns crossed top to bottom


@pytest.mark.parametrize("kind", ["memory", "cpu", "kills"])
def test_a_run_start_is_a_vertical_marker_on_the_graphs(client, kind):
    start2 = T0 + 30 * 60_000
    recs = simulate(T0, 60, per_type=1, seed=3, run_id=RUN_A)
    recs += simulate(start2, 60, per_type=1, seed=4, run_id=RUN_B)
    assert client.post("/logs", json=recs).status_code == 200
    window = {"since": rfc3339(T0 + 60_000), "until": rfc3339(T0 + HOUR)}
    image = decode(client.get(f"/graphs/{kind}.png", params=window))
    assert marker_columns(image) >= 1, "no marker at the second run's start"
    # A window with no run start has no marker.
    quiet = {"since": rfc3339(T0 + 60_000), "until": rfc3339(T0 + 20 * 60_000)}
    assert marker_columns(decode(client.get(f"/graphs/{kind}.png", params=quiet))) == 0


def test_starts_within_a_line_width_are_one_marker():
    """A fleet restarted at once (500 starts within a second) is one line;
    starts further apart than MARKER_PIXELS each keep theirs, in order."""
    window = Window(T0, T0 + HOUR)  # 600 px: 12 s a 2-pixel column
    together = [T0 + 60_000 + i for i in range(0, 1000, 2)]
    assert marker_times(together, window, 600) == [T0 + 60_000]
    apart = [T0 + 60_000, T0 + 60_000 + 11_000, T0 + 60_000 + 13_000, T0 + 30 * 60_000]
    assert marker_times(apart, window, 600) == [apart[0], apart[2], apart[3]]
    assert marker_times(apart, window, 6_000) == apart  # ten times the pixels
    assert marker_times([], window, 600) == []


def write_old_database(path: Path, records: list[dict]) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(OLD_SCHEMA)
    rows = []
    for rec in records:
        ms = int(
            (np.datetime64(rec["time"].rstrip("Z"), "ms") - np.datetime64(0, "ms")).astype(int)
        )
        rows.append(
            (
                rec["id"],
                ms,
                rec["host"],
                rec["cycle"],
                rec["event"],
                rec.get("container_id"),
                rec.get("container_name"),
                rec.get("container_type"),
                rec.get("cpu_ratio"),
                rec.get("cpu_cores"),
                rec.get("memory_bytes"),
                rec.get("memory_ratio"),
                ms,
                json.dumps(rec, separators=(",", ":")),
            )
        )
    with conn:
        conn.executemany("INSERT INTO logs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        # What the old code wrote: two runs merged into one row per (host, cycle, type).
        conn.execute(
            "INSERT INTO usage SELECT host, cycle, container_type, min(time_ms),"
            " sum(memory_bytes), count(memory_bytes), sum(cpu_ratio), count(cpu_ratio)"
            " FROM logs WHERE event IN ('keep', 'kill', 'would_kill', 'kill_failed')"
            " AND container_type IS NOT NULL GROUP BY host, cycle, container_type"
        )
    conn.close()


def test_an_old_database_is_migrated_at_start_up(tmp_path: Path):
    path = tmp_path / "logs.sqlite3"
    legacy = simulate(T0, 20, per_type=2, seed=1)  # an old gestor: no run_id
    newer = simulate(T0 + HOUR, 20, per_type=2, seed=2, run_id=RUN_B)  # restarted, cycles 1..20
    write_old_database(path, legacy + newer)

    db = Database(path)
    try:
        assert db.counters.total == len(legacy) + len(newer)
        assert db.counters.by_event["cycle"] == 40
        # Each run is back where it belongs: 20 cycles x 4 types in each window.
        first = db.usage_series("memory_bytes", T0, T0 + 200_000, 60_000)
        second = db.usage_series("memory_bytes", T0 + HOUR, T0 + HOUR + 200_000, 60_000)
        assert len(first) == 4 * 4
        assert len(second) == 4 * 4
        assert [r[1] for r in db.runs(T0, T0 + 2 * HOUR)] == [RUN_B]
        # The CPU graph's host line, from the cycle records' details.
        assert len(db.host_cpu_series(T0, T0 + 2 * HOUR, 60_000)) == 8  # 4 minutes of each run
        version = db._writer.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()
    # A second start finds nothing to migrate and the same data.
    db = Database(path)
    try:
        assert db._writer.execute("PRAGMA user_version").fetchone()[0] == version
        assert db.usage_series("memory_bytes", T0, T0 + 200_000, 60_000) == first
        assert db.counters.total == len(legacy) + len(newer)
        insert(db, [record(run_id=RUN_B, cycle=21, time=rfc3339(T0 + HOUR + 210_000))])
        assert db.counters.total == len(legacy) + len(newer) + 1
    finally:
        db.close()
