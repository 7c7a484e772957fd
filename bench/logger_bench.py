#!/usr/bin/env python3
"""Figures for the logger (issue 5): ingest rate and graph render time.

Starts the logger as a real uvicorn process on a free loopback port with a
fresh database, then
  1. ingests 100,000 gestor-shaped records in batches of 100 (goal: >= 5,000
     records/s), first from one client, then from several at once;
  2. times each graph endpoint over all 100,000 records (goal: <= 500 ms),
     server-side rendering included, as a client sees it.

Run with the logger's venv (bench/logger.sh does): logger/.venv/bin/python
bench/logger_bench.py [--records N] [--clients C] [--synchronous FULL|NORMAL].
Only loopback is ever contacted; every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "logger"))

import httpx  # noqa: E402

from tests.factory import now_ms, simulate  # noqa: E402
from tests.server import Server  # noqa: E402

INGEST_GOAL = 5000.0
RENDER_GOAL_MS = 500.0
BATCH = 100


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def make_bodies(count: int) -> list[bytes]:
    per_cycle = 4 * 5 + 1  # 5 containers per type and one cycle record
    cycles = -(-count // per_cycle)
    start = now_ms() - cycles * 10_000
    records = simulate(start, cycles, per_type=5, seed=2026)[:count]
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
                r = client.post(
                    "/logs", content=bodies[index], headers={"content-type": "application/json"}
                )
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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def ingest(server: Server, bodies: list[bytes], clients: int, single_share: float) -> dict:
    url = server.url
    pid = server.proc.pid
    single = max(1, int(len(bodies) * single_share))
    cpu0 = cpu_seconds(pid)
    wall1, lat1 = post_all(url, bodies[:single], 1)
    cpu1 = cpu_seconds(pid)
    wall2, lat2 = post_all(url, bodies[single:], clients)
    cpu2 = cpu_seconds(pid)
    rate1 = single * BATCH / wall1
    rate2 = (len(bodies) - single) * BATCH / wall2
    total = len(bodies) * BATCH / (wall1 + wall2)
    per_cpu = len(bodies) * BATCH / max(cpu2 - cpu0, 1e-9)
    print()
    print("ingest (POST /logs, 100 records per batch, acknowledged after commit):")
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
        "server_cpu_seconds": {
            "one_client": round(cpu1 - cpu0, 2),
            "concurrent": round(cpu2 - cpu1, 2),
        },
        "one_client_records_per_second": round(rate1),
        "concurrent_clients": clients,
        "concurrent_records_per_second": round(rate2),
        "overall_records_per_second": round(total),
    }


def render(url: str, stored: int, renders: int) -> dict:
    print()
    print(
        f"graph render over all {stored} records (range=all, 800x360 PNG;"
        f" 1 warm-up + {renders} timed, as the client sees it):"
    )
    out: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for kind in ("memory", "cpu", "kills"):
            times = []
            for i in range(renders + 1):
                started = time.perf_counter()
                r = client.get(f"/graphs/{kind}.png", params={"range": "all"})
                elapsed = (time.perf_counter() - started) * 1000
                if r.status_code != 200 or r.content[:4] != b"\x89PNG":
                    raise SystemExit(f"/graphs/{kind}.png: {r.status_code} {r.text[:200]}")
                if i:
                    times.append(elapsed)
            med = statistics.median(times)
            out[kind] = {
                "median_ms": round(med, 1),
                "min_ms": round(min(times), 1),
                "max_ms": round(max(times), 1),
            }
            print(
                f"  /graphs/{kind}.png: median {med:6.1f} ms, min {min(times):6.1f},"
                f" max {max(times):6.1f}   goal <= {RENDER_GOAL_MS:.0f} ms:"
                f" {verdict(med <= RENDER_GOAL_MS)}"
            )
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
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if args.records < 2 * BATCH or args.records % BATCH:
        parser.error(f"--records must be a multiple of {BATCH} and at least {2 * BATCH}")

    print(
        f"logger bench: {args.records} records, batches of {BATCH}, synchronous={args.synchronous}"
    )
    print(
        f"host: {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" load average at start {load()}"
    )
    bodies = make_bodies(args.records)
    figures: dict[str, object] = {"records": args.records, "synchronous": args.synchronous}
    with tempfile.TemporaryDirectory(prefix="logger-bench-") as tmp:
        server = Server(Path(tmp) / "data", LOGGER_SYNCHRONOUS=args.synchronous).start()
        try:
            figures["ingest"] = ingest(server, bodies, args.clients, args.single_share)
            stored = httpx.get(server.url + "/healthz").json()["records"]
            if stored != args.records:
                raise SystemExit(f"stored {stored} of {args.records} records")
            figures["render"] = render(server.url, stored, args.renders)
            size = sum(f.stat().st_size for f in (Path(tmp) / "data").iterdir())
            print(
                f"\ndatabase: {size / 1e6:.1f} MB for {stored} records"
                f" ({size / stored:.0f} bytes per record)"
            )
            figures["database_bytes_per_record"] = round(size / stored)
        finally:
            server.stop()
    print()
    print(f"load average at end {load()}")
    figures["load_average_end"] = load()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
