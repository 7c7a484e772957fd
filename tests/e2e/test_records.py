"""No record is lost: a cycle's records are on disk (the write-ahead spool)
before the cycle is reported done, so neither SIGTERM in the middle of kills
nor SIGKILL in the middle of shipping loses any, and a torn spool line costs
that line only. Counted by id in the real log service."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter

from harness import docker, http_get, wait_until

# The events that are records (the others are log lines only).
RECORD_EVENTS = {
    "cycle",
    "error",
    "keep",
    "kill",
    "kill_failed",
    "remove",
    "remove_failed",
    "would_kill",
    "would_remove",
}


def produced(g, cycles: set[int] | None = None) -> Counter:
    """(event, cycle, container) of every record gestor's log says it made."""
    return Counter(
        (e["event"], e["cycle"], e.get("container"))
        for e in g.log_lines()
        if e.get("event") in RECORD_EVENTS and (cycles is None or e.get("cycle") in cycles)
    )


def stored(records: list[dict], run_id: str) -> Counter:
    return Counter(
        (r["event"], r["cycle"], r.get("container_name"))
        for r in records
        if r.get("run_id") == run_id
    )


def drained(g) -> bool:
    return g.metric("gestor_log_queue_records") == 0


def test_sigterm_during_kills_with_the_log_service_down_loses_no_record(scope, make_gestor):
    for _ in range(4):
        scope.start("cpu", "stress --cpu 1")
    # stress as PID 1 ignores SIGTERM: the first cycle's three kills wait out
    # their 120 s grace, while the log service comes up and is stopped.
    g = make_gestor("--interval", "1", "--stop-timeout", "120")
    wait_until("three stops under way", 60, lambda: len(g.events("stopping")) == 3, 0.1)
    wait_until("the log service", 120, lambda: http_get(g.logger_url("/healthz")))
    docker("stop", g.logger_name)
    cycle = g.events("stopping")[0]["cycle"]
    run_id = g.run_id()
    started = time.monotonic()
    g.proc.send_signal(signal.SIGTERM)
    assert g.proc.wait(timeout=10) == 0
    took = time.monotonic() - started
    assert took < 2, f"SIGTERM took {took:.1f} s"
    mine = produced(g, {cycle})
    kills = [k for k in mine if k[0] == "kill"]
    assert len(kills) == 3, mine
    assert (("cycle", cycle, None)) in mine, mine

    # Back up, and gestor again: the spooled records of that cycle arrive once.
    docker("start", g.logger_name)
    g2 = make_gestor("--interval", "1", "--stop-timeout", "1")
    wait_until("the spool to drain", 90, lambda: drained(g2))
    records = g2.logger_records()
    ids = Counter(r["id"] for r in records)
    assert max(ids.values()) == 1, "a record stored twice"
    have = stored(records, run_id)
    for key, n in mine.items():
        assert have[key] == n, (key, n, have[key])
    print(
        f"SIGTERM mid-kill, log service down: cycle {cycle}'s {sum(mine.values())} records"
        " all stored once"
    )


def test_sigkill_while_shipping_loses_no_finished_cycle(scope, make_gestor):
    for kind in ("cpu", "cpu", "ram", "ram", "io", "io"):
        scope.start(kind, "stress --cpu 1" if kind == "cpu" else "stress --io 1")
    g = make_gestor("--interval", "0.3", "--dry-run", "--stopped-grace", "0")
    wait_until("a first cycle", 30, lambda: g.events("cycle"), 0.1)
    # One that the OOM killer ends at once, while gestor follows Docker's
    # events (as on a host): its removal is a record too, naming the cause.
    oom = scope.start(
        "ram", "stress --vm 1 --vm-bytes 64M --vm-keep", "--memory", "16m", "--memory-swap", "16m"
    )
    wait_until("the log service", 120, lambda: http_get(g.logger_url("/healthz")))
    wait_until(
        "the OOM-killed container judged",
        60,
        lambda: any(e.get("container") == oom for e in g.events("would_remove")),
        0.1,
    )
    wait_until("records being shipped", 30, lambda: g.metric("gestor_log_records_sent_total") > 20)
    run_id = g.run_id()
    g.proc.send_signal(signal.SIGKILL)  # no shutdown code runs
    g.proc.wait(timeout=10)
    done = {e["cycle"] for e in g.events("cycle")}
    mine = produced(g, done)
    assert len(done) >= 3, done
    assert sum(mine.values()) > 20, mine

    g2 = make_gestor("--interval", "1", "--dry-run")
    wait_until("the spool to drain", 90, lambda: drained(g2))
    records = g2.logger_records()
    assert max(Counter(r["id"] for r in records).values()) == 1, "a record stored twice"
    have = stored(records, run_id)
    missing = {k: n for k, n in mine.items() if have[k] < n}
    assert not missing, f"records of finished cycles lost: {missing}"
    removals = [
        r
        for r in records
        if r["event"] == "would_remove" and r["container_name"] == oom and r["run_id"] == run_id
    ]
    assert removals, "no would_remove record of the OOM-killed container"
    assert "OOM killer" in removals[0]["reason"], removals[:1]
    print(
        f"SIGKILL while shipping: {len(done)} finished cycles, {sum(mine.values())} records, 0 lost"
    )


def test_a_torn_spool_line_costs_that_line_only(scope, make_gestor, workdir):
    scope.start("cpu", "stress --cpu 1")
    g = make_gestor("--interval", "0.3", "--dry-run")
    wait_until("the log service", 120, lambda: http_get(g.logger_url("/healthz")))
    docker("stop", g.logger_name)
    wait_until("some cycles spooled", 30, lambda: len(g.events("cycle")) >= 5, 0.1)
    run_id = g.run_id()
    assert g.stop() == 0
    segments = sorted((workdir / "spool").glob("*.jsonl"))
    assert segments, "nothing in the spool"
    spooled = [json.loads(line) for f in segments for line in f.read_text().splitlines()]
    # A crash in the middle of a write: the newest segment's last line torn.
    newest = segments[-1]
    text = newest.read_bytes()
    newest.write_bytes(text[: len(text) - 25])

    docker("start", g.logger_name)
    g2 = make_gestor("--interval", "1", "--dry-run")
    wait_until("the spool to drain", 90, lambda: drained(g2))
    assert g2.metric('gestor_log_records_dropped_total{reason="corrupt"}') == 1
    have = {r["id"] for r in g2.logger_records() if r.get("run_id") == run_id}
    want = {r["id"] for r in spooled}
    assert want - have == {spooled[-1]["id"]}, want - have
    print(
        f"torn spool line: {len(want) - 1} of {len(want)} records delivered, the torn one counted"
    )
