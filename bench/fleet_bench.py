#!/usr/bin/env python3
"""The log service under a fleet (issue 25), in one run: `bench/logger.sh --fleet`.

1. One host: SQLite, one worker, 100-record batches over loopback TCP (the
   figure bench/logger.sh has always taken; goal >= 5,000 records/s).
2. The fleet ramp, for each configuration (default: SQLite with 1 worker,
   PostgreSQL with 2 and with 4 workers), each on a fresh database: simulated
   nodes (bench/fleet-load, compiled, one thread) POST one cycle's batch of 8
   gestor-shaped records every 10 s with jitter, ramped (250, 500, 1,000,
   2,000 ... nodes) until the p99 passes 250 ms, with 1 and then 3 live pages
   open the whole time (SSE /events plus the page's reads). Per step: POSTs/s,
   records/s, p50/p99, errors, the pages' reads and the server's CPU (the
   log service's processes and PostgreSQL's). Goal: PostgreSQL with workers
   >= 500 POSTs/s at p99 <= 250 ms with three pages open, and no slower than
   one SQLite worker in the same run.
3. Reads at scale, on both engines: graphs (fresh renders) and /logs/hosts
   timed with 10 hosts x 10 minutes (~5k records) and with 1,000 hosts x 10
   minutes (~480k) in the window; p50/p99 and the 500k/5k ratio. Goal:
   <= 150 ms at 500k and within 2x of the time at 5k.
4. Retention (fleetbench/retention.py): PostgreSQL's schema 7 -> 8 migration
   of a database of records over three days of arrival, one day's partitions
   dropped, and SQLite deleting a day of the same size row by row.

The log service runs as a real uvicorn serving on a Unix socket in a scratch
directory (the same transport for every configuration); PostgreSQL is
Debian's postgresql-15, started by the bench in a scratch directory on a
Unix socket (initdb/pg_ctl as the postgres user). Nothing listens on TCP but
the one-host run's loopback port 0.

Usage: bench/logger.sh --fleet [--configs sqlite:1,postgresql:2,postgresql:4]
[--steps 250,500,...] [--step-seconds 20] [--pages 1,3]
[--skip one-host,ramp,reads,retention] [--retention-records 600000]
[--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "logger"))
sys.path.insert(0, str(BENCH))

from fleetbench import ramp, retention  # noqa: E402
from fleetbench.cpu import tree_seconds  # noqa: E402
from fleetbench.postgres import Postgres  # noqa: E402
from fleetbench.service import Service  # noqa: E402

LOAD_DIR = BENCH / "fleet-load"
LOAD_BIN = LOAD_DIR / "target" / "release" / "fleet-load"
FLEET_GOAL_POSTS = 500.0
READ_GOAL_MS = 150.0
READ_RATIO_GOAL = 2.0
FILL_MINUTES = 10


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def uptime() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def build_load_generator() -> Path:
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--manifest-path", str(LOAD_DIR / "Cargo.toml")],
        check=True,
        timeout=900,
    )
    return LOAD_BIN


def fleet_load(*args: str, timeout: float) -> dict:
    done = subprocess.run(
        [str(LOAD_BIN), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode:
        raise SystemExit(f"fleet-load {' '.join(args)}: {done.stderr.strip()}")
    return json.loads(done.stdout)


def parse_config(text: str) -> tuple[str, int]:
    engine, _, workers = text.partition(":")
    if engine not in ("sqlite", "postgresql") or not workers.isdigit() or int(workers) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected sqlite:1 or postgresql:N")
    return engine, int(workers)


class Engines:
    """Starts a log service on a fresh database of either engine; one
    PostgreSQL cluster serves every PostgreSQL configuration of the run."""

    def __init__(self, workdir: Path, logger_dir: Path) -> None:
        self.workdir = workdir
        self.logger_dir = logger_dir
        self.pg: Postgres | None = None
        self.count = 0

    def service(self, engine: str, workers: int) -> Service:
        self.count += 1
        url = None
        if engine == "postgresql":
            if self.pg is None:
                self.pg = Postgres().start()
            url = self.pg.create_database(f"logs{self.count}")
        svc = Service(self.workdir / f"svc{self.count}", workers, url, self.logger_dir).start()
        if url and any(svc.data_dir.glob("*.sqlite3")):
            svc.stop()
            raise RuntimeError("it ignored LOGGER_DATABASE_URL and opened SQLite (no PostgreSQL)")
        return svc

    def start_or_report(self, engine: str, workers: int) -> Service | None:
        """The service, or None after saying why it did not start (the other
        configurations of the run still run)."""
        try:
            return self.service(engine, workers)
        except (RuntimeError, subprocess.CalledProcessError) as e:
            print(f"\n  {engine}:{workers}: the log service did not start: {str(e)[-1500:]}")
            return None

    def cpu_roots(self, service: Service) -> list[int]:
        roots = [service.proc.pid]
        if self.pg and "LOGGER_DATABASE_URL" in service.env:
            roots.append(self.pg.pid)
        return roots

    def close(self) -> None:
        if self.pg:
            self.pg.stop()


def one_host(records: int) -> dict:
    """The existing bench's section 1: 100-record batches, SQLite, one worker."""
    import logger_bench

    from tests.server import Server

    print()
    print("one host: SQLite, one worker, loopback TCP")
    bodies = logger_bench.bodies_of(logger_bench.make_records(records))
    with tempfile.TemporaryDirectory(prefix="fb-one-") as tmp:
        server = Server(Path(tmp) / "data").start()
        try:
            return logger_bench.ingest(server, bodies, 4, 0.2)
        finally:
            server.stop()
            server.close()


def run_step(engines: Engines, svc: Service, nodes: int, seconds: float, pages: int) -> dict:
    roots = engines.cpu_roots(svc)
    cpu0 = [tree_seconds(r) for r in roots]
    wall0 = time.monotonic()
    step = fleet_load(
        "run", "--unix", str(svc.socket), "--nodes", str(nodes), "--seconds", str(seconds),
        "--pages", str(pages), timeout=seconds + 120,
    )  # fmt: skip
    wall = time.monotonic() - wall0
    used = [tree_seconds(r) - c for r, c in zip(roots, cpu0, strict=True)]
    step["server_cores"] = round(sum(used) / wall, 2)
    step["logger_cores"] = round(used[0] / wall, 2)
    step["postgres_cores"] = round(used[1] / wall, 2) if len(used) > 1 else None
    # What a shared machine changes least: the server's work per POST.
    step["posts_per_server_cpu_second"] = round(step["posts_ok"] / max(sum(used), 1e-9), 1)
    step["load_average"] = uptime()
    return step


def print_step(step: dict) -> None:
    pages = step["live_pages"]
    reads = pages["reads"]
    graph, hosts = reads.get("graph", {}), reads.get("hosts", {})
    pg = f" (PostgreSQL {step['postgres_cores']})" if step["postgres_cores"] is not None else ""
    print(
        f"    {step['nodes']:>6} nodes: {step['posts_per_second']:6.1f} POSTs/s"
        f" {step['records_per_second']:7.0f} records/s  p50 {step['p50_ms']:7.1f}"
        f" p99 {step['p99_ms']:7.1f} ms  errors {step['errors']:>4}  server CPU"
        f" {step['server_cores']:.2f} cores{pg}, {step['posts_per_server_cpu_second']:.0f}"
        f" POSTs/CPU-s  client {step['client_cpu_seconds']:.1f} CPU-s"
        f" | pages: SSE {pages['sse_open']}/{pages['pages']} open,"
        f" {pages['sse_records_events']} events; graphs p50/p99 {graph.get('p50_ms')}/"
        f"{graph.get('p99_ms')} ms, hosts {hosts.get('p50_ms')}/{hosts.get('p99_ms')} ms,"
        f" 503s {pages['reads_busy_503']}, errors {sum(pages['read_errors'].values())}"
        f"  {'held' if ramp.held(step) else 'NOT held'}"
    )
    if step["errors"] or pages["read_errors"] or pages["sse_errors"]:
        kinds = {**step["error_kinds"], **pages["read_errors"], **pages["sse_errors"]}
        print(f"           errors: {json.dumps(kinds)[:400]}")


def fleet(
    engines: Engines, configs: list, steps: list[int], seconds: float, pages: list, warmup: float
) -> dict:
    out: dict[str, dict] = {}
    for engine, workers in configs:
        name = f"{engine}:{workers}"
        svc = engines.start_or_report(engine, workers)
        if svc is None:
            continue
        try:
            # Not counted: the first renders start the render processes, the
            # first POSTs warm the caches and the connections.
            fleet_load("run", "--unix", str(svc.socket), "--nodes", str(steps[0]),
                       "--seconds", str(warmup), "--pages", str(max(pages)),
                       timeout=warmup + 120)  # fmt: skip
            for page_count in pages:
                plural = "s" * (workers > 1)
                print(f"\n  {name} ({workers} worker{plural}), {page_count} live page(s):")
                done = []
                for nodes in steps:
                    step = run_step(engines, svc, nodes, seconds, page_count)
                    print_step(step)
                    done.append(step)
                    if not ramp.held(step):
                        break
                best = ramp.best_held(done)
                held = best["posts_per_second"] if best else 0.0
                out[f"{name} pages={page_count}"] = {"steps": done, "held_posts_per_second": held}
                print(f"    held: {held:.1f} POSTs/s (~{ramp.nodes_for(held)} nodes)")
        finally:
            svc.stop()
    return out


def fleet_verdict(results: dict, pages: int) -> None:
    key = f"pages={pages}"
    sqlite = [v["held_posts_per_second"] for k, v in results.items()
              if k.startswith("sqlite") and k.endswith(key)]  # fmt: skip
    for k, v in results.items():
        if k.startswith("postgresql") and k.endswith(key):
            got = v["held_posts_per_second"]
            against = "no SQLite configuration in this run"
            if sqlite:
                ratio = got / max(sqlite[0], 1e-9)
                against = (
                    f"one SQLite worker {sqlite[0]:.1f} (no slower: {verdict(got >= sqlite[0])};"
                    f" ratio {ratio:.2f}x)"
                )
            print(
                f"  {k}: {got:.1f} POSTs/s held (goal >= {FLEET_GOAL_POSTS:.0f}:"
                f" {verdict(got >= FLEET_GOAL_POSTS)}); {against}"
            )


def time_reads(svc: Service, samples: int, since: int) -> dict:
    """Graphs (each a fresh render: a new width every time) and host totals
    over the window from ``since`` (Unix seconds) to now, one request at a time.
    The window is fixed at the fill's start, so records filled early in a
    slow fill stay in it."""
    times: dict[str, list[float]] = {"graphs": [], "hosts": []}

    def graph_params(width: int) -> dict:
        return {"since": since, "until": int(time.time()) + 60, "width": width, "height": 360}

    busy = 0

    def timed_get(client: httpx.Client, path: str, params: dict) -> float:
        """Milliseconds of the answer; a 503 (every render slot busy) is
        waited out as the page does (Retry-After) and counted."""
        nonlocal busy
        for _ in range(10):
            t0 = time.perf_counter()
            r = client.get(path, params=params)
            took = (time.perf_counter() - t0) * 1000
            if r.status_code == 200:
                return took
            if r.status_code != 503:
                raise SystemExit(f"{path}: {r.status_code} {r.text[:200]}")
            busy += 1
            time.sleep(float(r.headers.get("retry-after", "1")))  # as the server asks
        raise SystemExit(f"{path}: still 503 after 10 tries")

    with svc.client() as client:
        totals = client.get("/logs/hosts", params={"since": since})
        in_window = sum(h["records"] for h in totals.json()["hosts"])
        for kind in ("memory", "cpu", "kills"):  # warm-up: imports, first connections
            timed_get(client, f"/graphs/{kind}.png", graph_params(699))
        for i in range(samples):
            for kind in ("memory", "cpu", "kills"):
                path = f"/graphs/{kind}.png"
                times["graphs"].append(timed_get(client, path, graph_params(700 + i)))
            times["hosts"].append(timed_get(client, "/logs/hosts", {"since": since}))
    out = {
        "records_in_window": in_window,
        "window_seconds": int(time.time()) - since,
        "busy_503": busy,
    }
    for name, values in times.items():
        values.sort()
        out[name] = {
            "n": len(values),
            "p50_ms": round(values[len(values) // 2], 1),
            "p99_ms": round(values[min(len(values) - 1, int(0.99 * len(values)))], 1),
        }
    return out


def reads(engines: Engines, configs: list, samples: int, hosts: tuple[int, int]) -> dict:
    small_hosts, large_hosts = hosts
    out = {}
    for engine, workers in configs:
        svc = engines.start_or_report(engine, workers)
        if svc is None:
            continue
        try:
            sizes = {}
            since = int(time.time()) - FILL_MINUTES * 60 - 60
            fill = ["fill", "--unix", str(svc.socket), "--minutes", str(FILL_MINUTES)]
            took = fleet_load(*fill, "--hosts", str(small_hosts), timeout=600)
            sizes["small"] = {"fill": took, **time_reads(svc, samples, since)}
            more = str(large_hosts - small_hosts)
            took = fleet_load(*fill, "--first-host", str(small_hosts), "--hosts", more,
                              timeout=1800)  # fmt: skip
            sizes["large"] = {"fill": took, **time_reads(svc, samples, since)}
        finally:
            svc.stop()
        name = f"{engine}:{workers}"
        out[name] = sizes
        small, large = sizes["small"], sizes["large"]
        print(
            f"\n  {name}: filled {large['fill']['records']:,} records at"
            f" {large['fill']['records_per_second']:,.0f} records/s (8-record cycles,"
            f" 400 records a POST); window {large['window_seconds'] / 60:.1f} min"
        )
        for what in ("graphs", "hosts"):
            ratio = large[what]["p50_ms"] / max(small[what]["p50_ms"], 1e-9)
            sizes[f"{what}_ratio"] = round(ratio, 2)
            ok = large[what]["p99_ms"] <= READ_GOAL_MS and ratio <= READ_RATIO_GOAL
            print(
                f"    {what:6}: {small['records_in_window']:>7,} records p50"
                f" {small[what]['p50_ms']:6.1f} p99 {small[what]['p99_ms']:6.1f} ms;"
                f" {large['records_in_window']:>7,} records p50 {large[what]['p50_ms']:6.1f}"
                f" p99 {large[what]['p99_ms']:6.1f} ms; ratio (p50) {ratio:.2f}x"
                f"   goal <= {READ_GOAL_MS:.0f} ms and <= {READ_RATIO_GOAL:.0f}x: {verdict(ok)}"
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configs", default="sqlite:1,postgresql:2,postgresql:4",
        type=lambda s: [parse_config(c) for c in s.split(",") if c],
    )  # fmt: skip
    parser.add_argument(
        "--steps", default="250,500,1000,2000,3000,4000,5000,6000,8000",
        type=lambda s: [int(x) for x in s.split(",") if x], help="nodes per ramp step",
    )  # fmt: skip
    parser.add_argument("--step-seconds", type=float, default=20.0)
    parser.add_argument(
        "--warmup", type=float, default=5.0,
        help="seconds of load, not counted, before each configuration's ramp (every worker"
        " should have drawn its first graphs)",
    )  # fmt: skip
    parser.add_argument(
        "--pages", default="1,3", type=lambda s: [int(x) for x in s.split(",") if x]
    )
    parser.add_argument("--read-samples", type=int, default=10)
    parser.add_argument(
        "--read-configs", default="sqlite:1,postgresql:2",
        type=lambda s: [parse_config(c) for c in s.split(",") if c],
    )  # fmt: skip
    parser.add_argument(
        "--read-hosts",
        default="10,1000",
        type=lambda s: tuple(int(x) for x in s.split(",")),
        help="hosts of the small and of the large window (10 minutes each)",
    )
    parser.add_argument("--one-host-records", type=int, default=50_000)
    parser.add_argument(
        "--logger-dir", type=Path, default=REPO / "logger",
        help="the log service to measure (a logger/ directory; default: this checkout's)",
    )  # fmt: skip
    parser.add_argument(
        "--retention-records", type=int, default=600_000,
        help="records of the retention part (over 3 days of arrival)",
    )  # fmt: skip
    parser.add_argument(
        "--skip", default="", help="comma-separated: one-host, ramp, reads, retention"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    parts = {"one-host", "ramp", "reads", "retention"}
    if skip - parts:
        parser.error(f"--skip: unknown part(s) {sorted(skip - parts)}")

    build_load_generator()
    print(
        f"fleet bench: {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" load average at start {uptime()}"
    )
    figures: dict[str, object] = {"load_average_start": uptime(), "args": sys.argv[1:]}
    if "one-host" not in skip:
        figures["one_host"] = one_host(args.one_host_records)
    with tempfile.TemporaryDirectory(prefix="fb-") as tmp:
        engines = Engines(Path(tmp), args.logger_dir)
        try:
            if "ramp" not in skip:
                print(
                    f"\nfleet ramp: 8-record batches every 10 s per node (+-1 s jitter),"
                    f" {args.step_seconds:.0f} s a step, until p99 > {ramp.P99_LIMIT_MS:.0f} ms;"
                    f" latency from when each POST was due"
                )
                results = fleet(
                    engines, args.configs, args.steps, args.step_seconds, args.pages, args.warmup
                )
                figures["fleet"] = results
                print()
                for page_count in args.pages:
                    fleet_verdict(results, page_count)
            if "reads" not in skip:
                print(
                    f"\nreads at scale: {args.read_hosts[0]} and then {args.read_hosts[1]} hosts x"
                    f" {FILL_MINUTES} minutes in the window; graphs (a fresh render each) and"
                    f" /logs/hosts over the window (from the fill's start),"
                    f" {args.read_samples} each"
                )
                figures["reads"] = reads(
                    engines, args.read_configs, args.read_samples, args.read_hosts
                )
        finally:
            engines.close()
    if "retention" not in skip:
        figures["retention"] = retention.run(args.retention_records, 3)
    print(f"\nload average at end {uptime()}")
    figures["load_average_end"] = uptime()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
