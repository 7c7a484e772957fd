#!/usr/bin/env python3
"""Figures for the log service (issues 5 and 12), in one run.

Starts the service as a real uvicorn process on a loopback socket bound to
port 0, with a fresh database, then
  1. ingests 100,000 gestor-shaped records in batches of 100 (goal: >= 5,000
     records/s), first from one client, then from several at once;
  2. times each graph over all 100,000 records as a client sees it, every
     render a fresh one (goal: <= 500 ms), and a request the cache answers;
  3. measures ingest latency (1 client posting batches of 100 back to back)
     alone, then while 20 clients fetch graphs in a loop (goal: p99 <= 250 ms
     under graph load); every write invalidates the graph cache, so the
     graph clients keep the render process busy the whole time;
  4. builds databases of 10^4 and 10^6 records in the schema of the previous
     version and measures the service's start-up on them: the first start
     (which migrates them once) and then ordinary starts (goal: <= 1 s),
     from process start to the first 200 of /healthz, and the database open
     alone as the service logs it.

Run with the logger's venv (bench/logger.sh does): logger/.venv/bin/python
bench/logger_bench.py [--records N] [--clients C] [--synchronous FULL|NORMAL]
[--startup-sizes 10000,1000000] [--load-seconds S] [--graph-clients G].
Only loopback is ever contacted; every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "logger"))

import httpx  # noqa: E402

from tests.factory import OLD_SCHEMA, now_ms, simulate  # noqa: E402
from tests.server import Server  # noqa: E402

INGEST_GOAL = 5000.0
RENDER_GOAL_MS = 500.0
LOADED_P99_GOAL_MS = 250.0
STARTUP_GOAL_S = 1.0
BATCH = 100
JSON_TYPE = {"content-type": "application/json"}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_records(count: int, seed: int = 2026) -> list[dict]:
    per_cycle = 4 * 5 + 1  # 5 containers per type and one cycle record
    cycles = -(-count // per_cycle)
    start = now_ms() - cycles * 10_000
    return simulate(start, cycles, per_type=5, seed=seed, run_id=f"{seed:032x}")[:count]


def bodies_of(records: list[dict]) -> list[bytes]:
    return [
        json.dumps(records[i : i + BATCH], separators=(",", ":")).encode()
        for i in range(0, len(records), BATCH)
    ]


def post_all(url: str, bodies: list[bytes], clients: int) -> tuple[float, list[float]]:
    """Posts every body (each exactly once); returns wall seconds and latencies (ms)."""
    latencies: list[float] = []
    lock = threading.Lock()
    cursor = iter(range(len(bodies)))
    errors: list[str] = []

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while True:
                with lock:
                    index = next(cursor, None)
                if index is None or errors:
                    return
                started = time.perf_counter()
                r = client.post("/logs", content=bodies[index], headers=JSON_TYPE)
                elapsed = (time.perf_counter() - started) * 1000
                if r.status_code != 200 or r.json()["stored"] != BATCH:
                    with lock:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                    return
                with lock:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    wall = time.perf_counter() - started
    if errors:
        raise SystemExit(f"ingest failed: {errors[0]}")
    return wall, latencies


def ingest(server: Server, bodies: list[bytes], clients: int, single_share: float) -> dict:
    url = server.url
    pid = server.proc.pid
    single = max(1, int(len(bodies) * single_share))
    cpu0 = cpu_seconds(pid)
    wall1, lat1 = post_all(url, bodies[:single], 1)
    wall2, lat2 = post_all(url, bodies[single:], clients)
    cpu2 = cpu_seconds(pid)
    rate1 = single * BATCH / wall1
    rate2 = (len(bodies) - single) * BATCH / wall2
    total = len(bodies) * BATCH / (wall1 + wall2)
    per_cpu = len(bodies) * BATCH / max(cpu2 - cpu0, 1e-9)
    print()
    print("1. ingest (POST /logs, 100 records per batch, acknowledged after commit):")
    print(
        f"  1 client : {single * BATCH:>7} records in {wall1:6.2f} s = {rate1:8.0f} records/s"
        f"  (batch latency p50 {percentile(lat1, 0.5):.1f} ms,"
        f" p99 {percentile(lat1, 0.99):.1f} ms)  goal: {verdict(rate1 >= INGEST_GOAL)}"
    )
    print(
        f"  {clients} clients: {(len(bodies) - single) * BATCH:>7} records in {wall2:6.2f} s"
        f" = {rate2:8.0f} records/s  (batch latency p50 {percentile(lat2, 0.5):.1f} ms,"
        f" p99 {percentile(lat2, 0.99):.1f} ms)  goal: {verdict(rate2 >= INGEST_GOAL)}"
    )
    print(
        f"  overall  : {total:8.0f} records/s (goal >= {INGEST_GOAL:.0f}:"
        f" {verdict(total >= INGEST_GOAL)}); the server used {cpu2 - cpu0:.1f} CPU-s,"
        f" i.e. {per_cpu:.0f} records per CPU-second of the server process"
    )
    return {
        "server_records_per_cpu_second": round(per_cpu),
        "one_client_records_per_second": round(rate1),
        "concurrent_clients": clients,
        "concurrent_records_per_second": round(rate2),
        "overall_records_per_second": round(total),
    }


def render(url: str, stored: int, renders: int) -> dict:
    print()
    print(
        f"2. graph render over all {stored} records (range=all, about 800x360 PNG;"
        f" 1 warm-up + {renders} timed, each a fresh render: a new width every time):"
    )
    out: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for kind in ("memory", "cpu", "kills"):
            times = []
            for i in range(renders + 1):
                params = {"range": "all", "width": 800 + i}
                started = time.perf_counter()
                r = client.get(f"/graphs/{kind}.png", params=params)
                elapsed = (time.perf_counter() - started) * 1000
                if r.status_code != 200 or r.content[:4] != b"\x89PNG":
                    raise SystemExit(f"/graphs/{kind}.png: {r.status_code} {r.text[:200]}")
                if i:
                    times.append(elapsed)
            started = time.perf_counter()
            client.get(f"/graphs/{kind}.png", params={"range": "all", "width": 800 + renders})
            cached = (time.perf_counter() - started) * 1000
            med = statistics.median(times)
            out[kind] = {
                "median_ms": round(med, 1),
                "min_ms": round(min(times), 1),
                "max_ms": round(max(times), 1),
                "cached_ms": round(cached, 1),
            }
            print(
                f"  /graphs/{kind}.png: median {med:6.1f} ms, min {min(times):6.1f},"
                f" max {max(times):6.1f}; from the cache {cached:5.1f} ms"
                f"   goal <= {RENDER_GOAL_MS:.0f} ms: {verdict(med <= RENDER_GOAL_MS)}"
            )
    return out


def ingest_for(url: str, seconds: float, start_seq: int) -> tuple[list[float], int]:
    """One client posting fresh batches of 100 back to back for ``seconds``."""
    latencies: list[float] = []
    seq = start_seq
    records = make_records(BATCH * 50, seed=start_seq)
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=60) as client:
        while time.monotonic() < deadline:
            batch = [dict(r, id=f"{r['id']}-{seq}") for r in records[(seq % 50) * BATCH :][:BATCH]]
            seq += 1
            body = json.dumps(batch, separators=(",", ":")).encode()
            started = time.perf_counter()
            r = client.post("/logs", content=body, headers=JSON_TYPE)
            latencies.append((time.perf_counter() - started) * 1000)
            if r.status_code != 200:
                raise SystemExit(f"ingest under load: {r.status_code} {r.text[:200]}")
    return latencies, seq


def graph_clients(url: str, count: int, stop: threading.Event, results: dict) -> list:
    """``count`` clients fetching graphs in a loop, like live pages with the
    graphs of every range and a few sizes, until ``stop``."""
    lock = threading.Lock()

    def client_loop(n: int) -> None:
        rng = random.Random(n)  # noqa: S311 (a load pattern, not a secret)
        with httpx.Client(base_url=url, timeout=60) as client:
            while not stop.is_set():
                kind = rng.choice(["memory", "cpu", "kills"])
                params = {
                    "range": rng.choice(["15m", "1h", "6h", "24h", "all"]),
                    "width": rng.choice([640, 800, 1200]),
                }
                started = time.perf_counter()
                r = client.get(f"/graphs/{kind}.png", params=params)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    results.setdefault(r.status_code, []).append(elapsed)
                if r.status_code == 503:  # as a page would: wait as told
                    stop.wait(float(r.headers.get("retry-after", "1")))

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    return threads


def under_load(server: Server, seconds: float, clients: int) -> dict:
    print()
    print(
        f"3. ingest latency (1 client, batches of 100 back to back, {seconds:.0f} s each):"
        f" alone, then while {clients} clients fetch graphs in a loop"
    )
    alone, seq = ingest_for(server.url, seconds, 1)
    stop = threading.Event()
    graphs: dict[int, list[float]] = {}
    threads = graph_clients(server.url, clients, stop, graphs)
    try:
        time.sleep(1)  # the graph clients are all running
        loaded, _ = ingest_for(server.url, seconds, seq)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    out = {}
    for name, lat in (("alone", alone), ("with_graph_load", loaded)):
        out[name] = {
            "batches": len(lat),
            "p50_ms": round(percentile(lat, 0.5), 1),
            "p99_ms": round(percentile(lat, 0.99), 1),
            "max_ms": round(max(lat), 1),
        }
    ok = graphs.get(200, [])
    busy = graphs.get(503, [])
    other = {code: len(v) for code, v in graphs.items() if code not in (200, 503)}
    out["graph_requests"] = {
        "ok": len(ok),
        "busy_503": len(busy),
        "other": other,
        "ok_p50_ms": round(percentile(ok, 0.5), 1) if ok else None,
    }
    ratio = out["with_graph_load"]["p99_ms"] / max(out["alone"]["p99_ms"], 1e-9)
    out["p99_ratio"] = round(ratio, 2)
    for name, label in (("alone", "alone          "), ("with_graph_load", "with graph load")):
        f = out[name]
        print(
            f"  {label}: {f['batches']:5d} batches, p50 {f['p50_ms']:6.1f} ms,"
            f" p99 {f['p99_ms']:6.1f} ms, max {f['max_ms']:6.1f} ms"
        )
    print(
        f"  graphs meanwhile: {len(ok)} answered (p50 {out['graph_requests']['ok_p50_ms']} ms),"
        f" {len(busy)} busy (503 + Retry-After), other: {other or 'none'}"
    )
    print(
        f"  p99 with graph load / alone: {ratio:.2f}x;"
        f" goal p99 <= {LOADED_P99_GOAL_MS:.0f} ms under load:"
        f" {verdict(out['with_graph_load']['p99_ms'] <= LOADED_P99_GOAL_MS)}"
    )
    return out


def old_database(path: Path, count: int) -> float:
    """A database of the previous version with ``count`` records (10,000
    simulated ones, copied with new ids and earlier times as often as needed);
    returns its size in bytes."""
    base = make_records(min(count, 10_000), seed=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.executescript(OLD_SCHEMA)
    rows = []
    for rec in base:
        ms = int(datetime.fromisoformat(rec["time"].replace("Z", "+00:00")).timestamp() * 1000)
        rows.append(
            (rec["id"], ms, rec["host"], rec["cycle"], rec["event"], rec.get("container_id"),
             rec.get("container_name"), rec.get("container_type"), rec.get("cpu_ratio"),
             rec.get("cpu_cores"), rec.get("memory_bytes"), rec.get("memory_ratio"), ms,
             json.dumps(rec, separators=(",", ":")))
        )  # fmt: skip
    with conn:
        conn.executemany("INSERT INTO logs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    span = max(r[1] for r in rows) - min(r[1] for r in rows) + 10_000
    copies = -(-count // len(rows))
    with conn:
        for k in range(1, copies):
            conn.execute(
                "INSERT INTO logs SELECT id || '-' || ?1, time_ms - ?1 * ?2, host, cycle, event,"
                " container_id, container_name, container_type, cpu_ratio, cpu_cores,"
                " memory_bytes, memory_ratio, received_ms - ?1 * ?2,"
                " json_set(record, '$.id', id || '-' || ?1, '$.run_id', printf('%032x', ?1))"
                " FROM logs WHERE rowid <= ?3",
                (k, span, len(rows)),
            )
        conn.execute(
            "INSERT INTO usage SELECT host, cycle, container_type, min(time_ms),"
            " sum(memory_bytes), count(memory_bytes), sum(cpu_ratio), count(cpu_ratio)"
            " FROM logs WHERE event IN ('keep', 'kill', 'would_kill', 'kill_failed')"
            " AND container_type IS NOT NULL GROUP BY host, cycle, container_type"
        )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return sum(f.stat().st_size for f in path.parent.iterdir() if f.name.startswith("logs"))


def timed_start(data: Path) -> tuple[float, float | None, str]:
    """Seconds from process start to the first 200 of /healthz, the database
    open as the service logged it, and the service's log."""
    server = Server(data)
    started = time.monotonic()
    try:
        server.start(timeout=900)
        took = time.monotonic() - started
        records = httpx.get(server.url + "/healthz", timeout=30).json()["records"]
    finally:
        server.stop()
        server.close()
    text = server.tail(100_000)
    opened = re.findall(r"opened in (\d+\.\d+) s \((\d+) records\)", text)
    if not opened or int(opened[-1][1]) != records:
        raise SystemExit(f"no database open logged for {records} records: {text[-2000:]}")
    return took, float(opened[-1][0]), text


def startup(sizes: list[int], workdir: Path) -> dict:
    print()
    print(
        "4. start-up on a database of the previous schema: the first start migrates it"
        " (once), then ordinary starts (median of 3); process start to first 200 of"
        " /healthz, and the database open alone:"
    )
    out = {}
    for count in sizes:
        data = workdir / f"startup-{count}"
        size = old_database(data / "logs.sqlite3", count)
        first, _, log = timed_start(data)
        migrated = re.findall(r"migrated .* in (\d+\.\d+) s", log)
        converted = re.findall(r"switched .* to incremental vacuum in (\d+\.\d+) s", log)
        runs = [timed_start(data)[:2] for _ in range(3)]
        start_s = statistics.median(r[0] for r in runs)
        open_s = statistics.median(r[1] for r in runs)
        out[str(count)] = {
            "database_mb": round(size / 1e6, 1),
            "first_start_s": round(first, 2),
            "migration_s": float(migrated[0]) if migrated else None,
            "vacuum_conversion_s": float(converted[0]) if converted else None,
            "start_s": round(start_s, 3),
            "database_open_s": round(open_s, 4),
        }
        print(
            f"  {count:>9,} records ({size / 1e6:7.1f} MB): first start {first:6.2f} s"
            f" (migration {migrated[0] if migrated else '?'} s, vacuum conversion"
            f" {converted[0] if converted else '-'} s); then start {start_s:.3f} s,"
            f" database open {open_s * 1000:.1f} ms   goal <= {STARTUP_GOAL_S:.0f} s:"
            f" {verdict(start_s <= STARTUP_GOAL_S)}"
        )
        for f in data.iterdir():
            f.unlink()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--single-share",
        type=float,
        default=0.2,
        help="share of the records one client sends before the concurrent phase",
    )
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL")
    parser.add_argument("--renders", type=int, default=5, help="timed renders per graph")
    parser.add_argument("--load-seconds", type=float, default=15.0)
    parser.add_argument("--graph-clients", type=int, default=20)
    parser.add_argument(
        "--startup-sizes", default="10000,1000000", help="comma-separated record counts"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if args.records < 2 * BATCH or args.records % BATCH:
        parser.error(f"--records must be a multiple of {BATCH} and at least {2 * BATCH}")
    sizes = [int(x) for x in args.startup_sizes.split(",") if x]

    print(
        f"logger bench: {args.records} records, batches of {BATCH}, synchronous={args.synchronous}"
    )
    print(
        f"host: {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" load average at start {load()}"
    )
    bodies = bodies_of(make_records(args.records))
    figures: dict[str, object] = {"records": args.records, "synchronous": args.synchronous}
    with tempfile.TemporaryDirectory(prefix="logger-bench-") as tmp:
        server = Server(Path(tmp) / "data", LOGGER_SYNCHRONOUS=args.synchronous).start()
        try:
            figures["ingest"] = ingest(server, bodies, args.clients, args.single_share)
            stored = httpx.get(server.url + "/healthz").json()["records"]
            if stored != args.records:
                raise SystemExit(f"stored {stored} of {args.records} records")
            figures["render"] = render(server.url, stored, args.renders)
            figures["under_graph_load"] = under_load(server, args.load_seconds, args.graph_clients)
            size = sum(f.stat().st_size for f in (Path(tmp) / "data").iterdir())
            records = httpx.get(server.url + "/healthz").json()["records"]
            print(
                f"\n  database: {size / 1e6:.1f} MB for {records} records"
                f" ({size / records:.0f} bytes per record)"
            )
            figures["database_bytes_per_record"] = round(size / records)
        finally:
            server.stop()
            server.close()
        if sizes:
            figures["startup"] = startup(sizes, Path(tmp))
    print()
    print(f"load average at end {load()}")
    figures["load_average_end"] = load()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
