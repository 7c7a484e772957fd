"""Several workers on PostgreSQL: what they share, and the SIGKILL drill.

Real uvicorn processes (tests/serve.py --workers 2, uvicorn's own supervisor)
on the suite's real PostgreSQL server (tests/pg.py); every request opens a new
connection, so the kernel hands requests to either worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

from app.config import Settings
from app.postgres import MIGRATION_LOCK, MIGRATIONS
from tests.conftest import engine_env
from tests.factory import now_ms, record, simulate
from tests.server import LOGGER_DIR, Server

WORKERS = 2


def worker_pids(supervisor: int) -> list[int]:
    """uvicorn's worker processes: the supervisor's children that run spawn_main."""
    path = Path(f"/proc/{supervisor}/task/{supervisor}/children")
    pids = []
    for pid in path.read_text().split():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            pids.append(int(pid))
    return pids


def wait_for(condition, timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


@pytest.fixture
def workers(tmp_path: Path, pg_cluster) -> Iterator[Server]:
    """Two workers on a fresh PostgreSQL database."""
    from tests import conftest

    conftest._Engine.cluster = pg_cluster
    conftest._Engine.name = "postgresql"
    env = engine_env(tmp_path / "data")
    conftest._Engine.name = "sqlite"
    server = Server(tmp_path / "data", LOGGER_WORKERS=str(WORKERS), **env)
    with server:
        assert wait_for(lambda: len(worker_pids(server.proc.pid)) == WORKERS), server.tail()
        yield server


def post(url: str, records: list[dict]) -> httpx.Response:
    # A new connection per request: either worker may answer.
    return httpx.post(url + "/logs", json=records, timeout=10)


def test_more_than_one_worker_on_sqlite_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="LOGGER_WORKERS=2 needs PostgreSQL"):
        Settings(data_dir=tmp_path, workers=2)
    server = Server(tmp_path / "data", LOGGER_WORKERS="2")
    try:
        with pytest.raises(RuntimeError, match="LOGGER_WORKERS=2 needs PostgreSQL"):
            server.start(timeout=20)
    finally:
        server.stop()
        server.close()


def test_workers_show_the_same_counters(workers: Server) -> None:
    stored = 0
    for cycle in range(12):
        batch = simulate(now_ms() - 60_000, 1, seed=cycle, host=f"h{cycle}")
        response = post(workers.url, batch)
        assert response.status_code == 200, response.text
        stored += response.json()["stored"]

    def every_worker_agrees() -> bool:
        totals = {httpx.get(workers.url + "/stats", timeout=5).json()["total"] for _ in range(12)}
        return totals == {stored}

    # Counters kept per process would show each worker only its own writes.
    assert wait_for(every_worker_agrees, timeout=10)
    hosts = httpx.get(workers.url + "/logs/hosts", timeout=5).json()["hosts"]
    assert sum(h["records"] for h in hosts) == stored


def stream_ids(url: str, seen: set[str], stop: threading.Event) -> None:
    """Collects the ids of every record the live stream shows; reconnects when
    the stream ends, as a browser's EventSource does."""
    while not stop.is_set():
        try:
            with httpx.stream("GET", url + "/events", timeout=httpx.Timeout(5, read=30)) as r:
                event = None
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "records":
                        seen.update(rec["id"] for rec in json.loads(line[6:])["records"])
                    if stop.is_set():
                        return
        except httpx.HTTPError:
            time.sleep(0.05)


def test_the_live_stream_shows_what_every_worker_stored(workers: Server) -> None:
    seen: set[str] = set()
    stop = threading.Event()
    reader = threading.Thread(target=stream_ids, args=(workers.url, seen, stop), daemon=True)
    reader.start()
    try:
        # The stream is open once a record posted now shows in it.
        def probe_shows() -> bool:
            probe = record()
            assert post(workers.url, [probe]).status_code == 200
            return wait_for(lambda: probe["id"] in seen, timeout=0.5)

        assert wait_for(probe_shows, timeout=10)
        posted = [record() for _ in range(20)]
        for rec in posted:  # new connections: about half land on the other worker
            assert post(workers.url, [rec]).status_code == 200
        # Batches too large for a notification (each record's reason 1,000
        # characters): the other worker reads them from the database.
        large = [[record(reason="x" * 1_000) for _ in range(10)] for _ in range(6)]
        for batch in large:
            assert post(workers.url, batch).status_code == 200
        ids = {rec["id"] for rec in posted} | {rec["id"] for b in large for rec in b}
        assert wait_for(lambda: ids <= seen, timeout=5), len(ids - seen)
    finally:
        stop.set()
        reader.join(timeout=5)


def test_sigkill_of_one_worker_loses_no_acknowledged_record(workers: Server) -> None:
    """The drill: concurrent senders, one worker killed mid-load. Every record
    that got a 2xx is stored exactly once; the live stream goes on."""
    acked: list[str] = []
    failed = 0
    lock = threading.Lock()
    stop_load = threading.Event()
    seen: set[str] = set()
    stop_stream = threading.Event()
    reader = threading.Thread(target=stream_ids, args=(workers.url, seen, stop_stream), daemon=True)
    reader.start()

    def sender(n: int) -> None:
        nonlocal failed
        seq = 0
        while not stop_load.is_set():
            seq += 1
            batch = [record(host=f"sender{n}") for _ in range(8)]
            try:
                response = post(workers.url, batch)
            except httpx.HTTPError:
                response = None
            with lock:
                if response is not None and response.is_success:
                    acked.extend(rec["id"] for rec in batch)
                else:
                    failed += 1

    with ThreadPoolExecutor(6) as pool:
        for n in range(6):
            pool.submit(sender, n)
        assert wait_for(lambda: len(acked) >= 400, timeout=30)
        victim = worker_pids(workers.proc.pid)[0]
        os.kill(victim, signal.SIGKILL)
        at_kill = len(acked)
        assert wait_for(lambda: len(acked) >= at_kill + 400, timeout=30), "no 2xx after the kill"
        stop_load.set()
    # The survivor (or the worker uvicorn starts in the victim's place) streams
    # what is stored after the kill.
    last = [record(host="after-kill") for _ in range(8)]
    assert post(workers.url, last).status_code == 200
    try:
        assert wait_for(lambda: {r["id"] for r in last} <= seen, timeout=10)
    finally:
        stop_stream.set()
        reader.join(timeout=5)
    url = workers.env["LOGGER_DATABASE_URL"]
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT count(*), count(DISTINCT id) FROM logs WHERE id = ANY(%s)", (acked,)
        ).fetchone()
    assert found == (len(acked), len(acked)), (found, len(acked), failed)


def migrate(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.migrate"],
        cwd=LOGGER_DIR,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_concurrent_migrations_apply_each_version_once(tmp_path: Path, pg_cluster) -> None:
    """`python -m app.migrate` x 4 at once on a new database: all exit 0 (the
    advisory lock makes the others wait, then find nothing to do)."""
    url = pg_cluster.database()
    waiting = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    with psycopg.connect(url, autocommit=True) as holder:
        # Held here first, so all four start together once it is let go.
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        runs = [migrate({"LOGGER_DATABASE_URL": url}) for _ in range(4)]
        assert wait_for(lambda: holder.execute(waiting).fetchone()[0] == 4, timeout=30)
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        outputs = [(run.wait(timeout=60), run.stdout.read()) for run in runs]  # type: ignore[union-attr]
    assert [code for code, _ in outputs] == [0] * 4, outputs
    with psycopg.connect(url) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == [v for v, _ in MIGRATIONS]
    again = migrate({"LOGGER_DATABASE_URL": url})
    assert again.wait(timeout=60) == 0
    assert f"schema {MIGRATIONS[-1][0]} from {MIGRATIONS[-1][0]}" in again.stdout.read()  # type: ignore[union-attr]


def test_migrate_on_sqlite_and_refused_settings(tmp_path: Path) -> None:
    done = migrate({"LOGGER_DATA_DIR": str(tmp_path)})
    assert done.wait(timeout=60) == 0, done.stdout.read()  # type: ignore[union-attr]
    assert (tmp_path / "logs.sqlite3").exists()
    refused = migrate({"LOGGER_DATA_DIR": str(tmp_path), "LOGGER_WORKERS": "2"})
    assert refused.wait(timeout=60) == 1
    assert "LOGGER_WORKERS=2 needs PostgreSQL" in refused.stdout.read()  # type: ignore[union-attr]


@pytest.mark.parametrize("found", [5, 7])
def test_an_older_schema_with_records_is_migrated_to_day_partitions(pg_cluster, found) -> None:
    """PostgreSQL 5 or 7 -> 8 on a database with records that arrived on two
    days: each record lands in its arrival day's partition and the side tables
    are rebuilt per day from the records, so every read answers what it
    answers on a database that stored the same records partitioned (the
    schema 7 side tables are set aside: made with a row of nonsense)."""
    from app.postgres import COLUMNS, DAY_MS, PostgresDatabase, migrate
    from app.routers.logs import parse_records

    t0 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000
    records = simulate(t0, 30, per_type=2, seed=3, host="alpha", run_id="c" * 32)
    records += simulate(t0 + 4_000, 20, per_type=1, seed=4, host="beta", run_id="d" * 32)
    day = now_ms() // DAY_MS * DAY_MS
    until = t0 + 10 * 60_000

    def reads(db: PostgresDatabase) -> list:
        """Every read's rows."""
        return [
            [tuple(row) for row in rows]
            for rows in (
                db.usage_series("memory_bytes", t0, until, 120_000),
                db.usage_series("cpu_ratio", t0, until, 60_000),
                db.host_cpu_series(t0, until, 60_000),
                db.kill_series(t0, until, 60_000),
                db.host_totals(None),
                db.host_totals(t0 + 90_001),
                db.runs(t0, until),
                db.hosts(),
                [(db.stored_days(),)],
                [(db.counters.as_dict(),)],
            )
        ]

    partitioned = PostgresDatabase(pg_cluster.database())
    try:
        half = len(records) // 2
        partitioned.insert(parse_records(json.dumps(records[:half]).encode()), day - 1)
        partitioned.insert(parse_records(json.dumps(records[half:]).encode()), day + 1)
        want = reads(partitioned)
        rows = partitioned._fetch(f"SELECT {COLUMNS} FROM logs")
        hosts = partitioned._fetch("SELECT host, last_received_ms FROM hosts")
    finally:
        partitioned.close()
    assert all(want), want
    today = day // DAY_MS
    assert want[8] == [([today - 1, today, today + 1],)]  # and tomorrow's, made ahead

    url = pg_cluster.database()
    assert migrate(url, target=found) == 0
    with psycopg.connect(url) as conn:
        conn.cursor().executemany(
            f"INSERT INTO logs ({COLUMNS}) VALUES ({', '.join(['%s'] * len(rows[0]))})", rows
        )
        conn.cursor().executemany("INSERT INTO hosts VALUES (%s, %s)", hosts)
        conn.execute("INSERT INTO counts VALUES ('kill', 'cpu', 0, 999)")
    migrated = PostgresDatabase(url)
    try:
        # Sums added in another order: equal to 1e-9, not to the last bit
        # (rounding both to 6 places split 0.1286125 one way and the other).
        assert reads(migrated) == [
            [
                tuple(pytest.approx(v, rel=1e-9) if isinstance(v, float) else v for v in row)
                for row in rows
            ]
            for rows in want
        ]
    finally:
        migrated.close()
