"""Log records shaped like gestor's (see notes/records.md), for tests and benches."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

TYPES = ("cpu", "ram", "io", "disk")


def rfc3339(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def now_ms() -> int:
    return int(datetime.now(tz=UTC).timestamp() * 1000)


def record(**fields: Any) -> dict[str, Any]:
    """A valid `keep` record; keyword arguments replace or add fields."""
    base: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "time": rfc3339(now_ms()),
        "host": "testhost",
        "cycle": 1,
        "event": "keep",
        "container_id": uuid.uuid4().hex + uuid.uuid4().hex,
        "container_name": "cpu-" + uuid.uuid4().hex[:8],
        "container_type": "cpu",
        "cpu_ratio": 0.25,
        "cpu_cores": 0.5,
        "memory_bytes": 64 * 1024 * 1024,
        "memory_ratio": 0.01,
        "disk_read_bytes_per_second": 0.0,
        "disk_write_bytes_per_second": 1024.0,
        "io_read_chars_per_second": 10.0,
        "io_write_chars_per_second": 20.0,
        "reason": "within limits",
        "details": {"rank": 1},
    }
    base.update(fields)
    return base


def simulate(
    start_ms: int,
    cycles: int,
    per_type: int = 3,
    interval_ms: int = 10_000,
    seed: int = 1,
    host: str = "testhost",
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    """Records of ``cycles`` gestor cycles: per cycle one `cycle` record, a `keep`
    for every container and now and then a `kill` (the killed one is replaced).

    With ``run_id`` every record carries it (as gestor does since run ids);
    without, the records look like an older gestor's."""
    rng = random.Random(seed)
    containers: list[tuple[str, str, str]] = []

    def spawn(kind: str) -> tuple[str, str, str]:
        cid = f"{rng.getrandbits(256):064x}"
        return cid, f"{kind}-{cid[:8]}", kind

    for kind in TYPES:
        containers += [spawn(kind) for _ in range(per_type)]
    out: list[dict[str, Any]] = []
    for cycle in range(1, cycles + 1):
        ms = start_ms + (cycle - 1) * interval_ms
        kills = 0
        for index, (cid, name, kind) in enumerate(list(containers)):
            mem = {"ram": 256, "disk": 48, "io": 8, "cpu": 4}[kind] * 1024 * 1024
            mem = int(mem * rng.uniform(0.8, 1.2))
            cpu = {"cpu": 0.45, "io": 0.1, "disk": 0.08, "ram": 0.05}[kind] * rng.uniform(0.7, 1.1)
            event = "kill" if rng.random() < 0.02 else "keep"
            out.append(
                {
                    "id": f"{rng.getrandbits(128):032x}",
                    "time": rfc3339(ms + 1 + index),
                    "host": host,
                    "cycle": cycle,
                    "event": event,
                    "container_id": cid,
                    "container_name": name,
                    "container_type": kind,
                    "cpu_ratio": round(cpu, 4),
                    "cpu_cores": round(cpu * 2, 4),
                    "memory_bytes": mem,
                    "memory_ratio": round(mem / (24 * 1024**3), 6),
                    "disk_read_bytes_per_second": 0.0,
                    "disk_write_bytes_per_second": 1e6 if kind == "disk" else 0.0,
                    "io_read_chars_per_second": 5e5 if kind == "io" else 0.0,
                    "io_write_chars_per_second": 5e5 if kind == "io" else 0.0,
                    "reason": "surplus container of its type" if event == "kill" else "kept",
                    "details": {},
                }
            )
            if event == "kill":
                kills += 1
                containers[index] = spawn(kind)
        out.append(
            {
                "id": f"{rng.getrandbits(128):032x}",
                "time": rfc3339(ms),
                "host": host,
                "cycle": cycle,
                "event": "cycle",
                "reason": f"cycle {cycle}: {len(containers)} containers, {kills} killed",
                "details": {
                    "containers": len(containers),
                    "kills": kills,
                    "duration_seconds": 0.012,
                    "source": "userspace",
                    "host_memory_ratio": 0.4,
                    "host_cpu_ratio": round(0.6 + 0.2 * rng.random(), 3),
                },
            }
        )
    if run_id is not None:
        for rec in out:
            rec["run_id"] = run_id
    return out


# The schema of the databases written before issue 12: usage keyed by
# (host, cycle, container_type), no counts table, auto_vacuum off; what the
# migration on start-up turns into the current one.
OLD_SCHEMA = """
CREATE TABLE logs (
    id TEXT PRIMARY KEY, time_ms INTEGER NOT NULL, host TEXT, cycle INTEGER,
    event TEXT NOT NULL, container_id TEXT, container_name TEXT, container_type TEXT,
    cpu_ratio REAL, cpu_cores REAL, memory_bytes INTEGER, memory_ratio REAL,
    received_ms INTEGER NOT NULL, record TEXT NOT NULL
);
CREATE INDEX logs_time ON logs (time_ms, id);
CREATE INDEX logs_event_time ON logs (event, time_ms);
CREATE INDEX logs_name_time ON logs (container_name, time_ms);
CREATE INDEX logs_cid_time ON logs (container_id, time_ms);
CREATE TABLE usage (
    host TEXT NOT NULL, cycle INTEGER NOT NULL, container_type TEXT NOT NULL,
    time_ms INTEGER NOT NULL, memory_sum INTEGER NOT NULL DEFAULT 0,
    memory_n INTEGER NOT NULL DEFAULT 0, cpu_sum REAL NOT NULL DEFAULT 0,
    cpu_n INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (host, cycle, container_type)
) WITHOUT ROWID;
CREATE INDEX usage_time ON usage
    (time_ms, container_type, memory_n, memory_sum, cpu_n, cpu_sum);
"""


def expected_series(records: list[dict], since: int, bucket: int) -> dict[str, dict]:
    """The graphs' series computed the slow way, from the records themselves:
    per bucket and type, the type's summed figures over the cycles that
    reported it (a record's figures count in its own bucket, a cycle in the
    bucket of its first record of the type; gestor stamps a cycle's records
    with one time, so both are the same); the mean host CPU of the cycle
    records; the kills per type."""
    sums: dict[tuple, list[float]] = {}
    starts: dict[tuple, int] = {}
    host_cpu: dict[int, list[float]] = {}
    kills: dict[tuple, int] = {}
    for rec in records:
        ms = ms_of(rec["time"])
        b = (ms - since) // bucket
        if rec["event"] == "cycle":
            host_cpu.setdefault(b, []).append(rec["details"]["host_cpu_ratio"])
            continue
        kind = rec["container_type"]
        if rec["event"] == "kill":
            kills[(b, kind)] = kills.get((b, kind), 0) + 1
        acc = sums.setdefault((b, kind), [0.0, 0.0])
        acc[0] += rec["memory_bytes"]
        acc[1] += rec["cpu_ratio"]
        cycle = (rec["host"], rec.get("run_id", ""), rec["cycle"], kind)
        starts[cycle] = min(starts.get(cycle, ms), ms)
    cycles: dict[tuple, int] = {}
    for (_, _, _, kind), first in starts.items():
        key = ((first - since) // bucket, kind)
        cycles[key] = cycles.get(key, 0) + 1
    return {
        "memory": {k: sums.get(k, [0.0, 0.0])[0] / n for k, n in cycles.items()},
        "cpu": {k: sums.get(k, [0.0, 0.0])[1] / n for k, n in cycles.items()},
        "host_cpu": {b: sum(v) / len(v) for b, v in host_cpu.items()},
        "kills": kills,
    }


def ms_of(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
