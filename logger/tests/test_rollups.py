"""Per-minute rollups: host totals read them, not the window's records, and
give the answers the records give (on both engines: conftest BOTH_ENGINES)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from app.deps import now_ms
from app.routers.logs import parse_records
from tests.factory import expected_series, record, rfc3339, simulate

T0 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000  # on a minute
MINUTE = 60_000


def expected_totals(records: list[dict], since_ms: int) -> dict[str, list]:
    """Per host from the records themselves: records, cycles, kills, failures, errors."""
    from datetime import datetime

    totals: dict[str, list] = {}
    for rec in records:
        ms = int(datetime.fromisoformat(rec["time"].replace("Z", "+00:00")).timestamp() * 1000)
        if ms < since_ms or rec["event"] == "alert":
            continue
        acc = totals.setdefault(rec["host"], [0, 0, 0, 0, 0])
        acc[0] += 1
        acc[1] += rec["event"] == "cycle"
        acc[2] += rec["event"] == "kill"
        acc[3] += rec["event"] == "kill_failed"
        acc[4] += rec["event"] == "error"
    return totals


def hosts(client, since_ms: int) -> dict[str, list]:
    page = client.get("/logs/hosts", params={"since": str(since_ms / 1000)}).json()
    return {
        h["host"]: [h["records"], h["cycles"], h["kills"], h["kill_failures"], h["errors"]]
        for h in page["hosts"]
    }


def test_host_totals_match_the_records_for_any_start(client):
    records = []
    for n, host in enumerate(("alpha", "beta", "gamma")):
        records += simulate(T0 + n * 7_000, 30, per_type=2, seed=n, host=host)
    records += [
        record(host="beta", event="error", time=rfc3339(T0 + 95_000), container_type=None),
        record(host="alpha", event="kill_failed", time=rfc3339(T0 + 125_500)),
    ]
    for start in range(0, len(records), 200):
        assert client.post("/logs", json=records[start : start + 200]).status_code == 200
    # Whole minutes, a start inside a minute (its partial minute from the
    # records), and one after everything.
    for since in (T0, T0 + 1, T0 + 61_234, T0 + 2 * MINUTE + 59_999, T0 + 3_600_000):
        assert hosts(client, since) == expected_totals(records, since), since


def test_host_totals_come_from_the_rollups(client, engine):
    """With the records of whole minutes gone from under it (SQLite: deleted by
    hand), the totals still count them: they are read from the rollups."""
    records = simulate(T0, 12, per_type=1, seed=3, host="delta")
    assert client.post("/logs", json=records).status_code == 200
    before = hosts(client, T0)
    assert before["delta"][0] == len(records)
    if engine != "sqlite":
        return
    conn = sqlite3.connect(client.app.state.db.path)
    with conn:
        conn.execute("DELETE FROM logs")
    conn.close()
    assert hosts(client, T0) == before


def graph_series(db, since: int, until: int, bucket: int) -> dict[str, dict]:
    return {
        "memory": {(b, t): v for b, t, v in db.usage_series("memory_bytes", since, until, bucket)},
        "cpu": {(b, t): v for b, t, v in db.usage_series("cpu_ratio", since, until, bucket)},
        "host_cpu": dict(db.host_cpu_series(since, until, bucket)),
        "kills": {(b, t): n for b, t, n in db.kill_series(since, until, bucket)},
    }


def assert_series(got: dict[str, dict], want: dict[str, dict]) -> None:
    for name in ("memory", "cpu", "host_cpu"):
        assert got[name] == pytest.approx(want[name]), name
    assert got["kills"] == want["kills"]


def as_arrived(records: list[dict], day: int) -> list[dict]:
    """``records`` as PostgreSQL counts their cycles: per day of arrival (its
    side tables are partitioned by it), so a cycle's records that arrived on
    another day are another cycle."""
    return [{**rec, "cycle": (day, rec["cycle"])} for rec in records]


def test_the_graphs_match_the_records_before_and_after_retention(client, engine):
    """The graphs' series (read from the rollups) equal what the records left
    say, on either engine: after retention took records by arrival, a cycle
    whose first records went among them (its cycle moves to the next minute),
    and a whole minute. The cycle's records arrived on two days: PostgreSQL
    counts it on each day until the first is dropped."""
    db = client.app.state.db
    old = simulate(T0, 18, per_type=2, seed=7, host="alpha", run_id="a" * 32)
    # A cycle straddling a minute: its first record (the only one in the
    # earlier minute, a cpu container's; two more are in the next) arrives early.
    straddle = simulate(T0 + 3 * MINUTE - 2, 1, per_type=3, seed=8, host="alpha", run_id="b" * 32)
    new = simulate(T0 + 3 * MINUTE + 5_000, 30, per_type=1, seed=9, host="beta")
    cut = now_ms() // 86_400_000 * 86_400_000  # a day's start: PostgreSQL drops whole days
    db.insert(parse_records(json.dumps(old + straddle[:1]).encode()), received_ms=cut - 1)
    db.insert(parse_records(json.dumps(straddle[1:] + new).encode()), received_ms=cut + 1)
    until = T0 + 12 * MINUTE
    arrived = old + straddle + new
    if engine == "postgresql":
        arrived = as_arrived(old + straddle[:1], 0) + as_arrived(straddle[1:] + new, 1)
    for bucket in (MINUTE, 2 * MINUTE):
        want = expected_series(arrived, T0, bucket)
        assert want["kills"]
        assert want["host_cpu"]
        assert_series(graph_series(db, T0, until, bucket), want)
    db.delete_before(cut)
    for bucket in (MINUTE, 2 * MINUTE):
        assert_series(
            graph_series(db, T0, until, bucket), expected_series(straddle[1:] + new, T0, bucket)
        )
