"""Fault drills on the real system. Each states what was lost: nothing.

(The garbage/truncated sysinfo drill, the SIGTERM-mid-cycle drill and the
full-spool/full-disk drills run against the real daemon in the Rust suite:
tests/daemon_faults.rs and tests/shipper_faults.rs.)"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from harness import REPO, docker, http_get, wait_until

INTERVAL = 5


def settled(scope):
    """At most one running container per type, and every kill complete."""
    by_type = scope.running_by_type()
    if not all(len(v) <= 1 for v in by_type.values()):
        return None
    if len(scope.containers(all_states=True)) != len(scope.containers()):
        return None
    return by_type


def test_log_service_killed_for_60s_loses_and_duplicates_nothing(scope, make_gestor, workdir):
    g = make_gestor("--interval", str(INTERVAL), "--stop-timeout", "1")
    wait_until("log service healthy", 120, lambda: http_get(g.logger_url("/healthz")))
    scope.generate(10, workdir)
    wait_until("first kills", 30, lambda: settled(scope))

    docker("kill", g.logger_name)  # SIGKILL, as a crash would
    down_at = time.monotonic()
    scope.generate(10, workdir)  # decisions happen while it is down
    wait_until("kills while the log service is down", 30, lambda: settled(scope))
    wait_until("records waiting", 30, lambda: g.metric("gestor_log_queue_records") > 0)
    time.sleep(max(0.0, 60 - (time.monotonic() - down_at)))
    assert g.metric("gestor_log_queue_records") > 0
    docker("start", g.logger_name)
    # Docker publishes the restarted container on a port it picks again:
    # gestor learns where and ships there.
    new_url = f"http://127.0.0.1:{g.logger_port}"

    wait_until("the queue to drain", 90, lambda: g.metric("gestor_log_queue_records") == 0)
    learnt = [
        line.get("url") for line in g.log_lines() if line.get("message") == "log service address"
    ]
    assert learnt, "gestor never logged the log service's address"
    assert learnt[-1] == new_url, (learnt, new_url)
    g.stop()  # no more records: compare the full account
    records = g.logger_records()
    # What the last cycles produced at shutdown and could not deliver at once
    # waits in the spool for the next start: kept, not lost.
    spooled = [
        json.loads(line)
        for f in sorted((workdir / "spool").glob("*.jsonl"))
        for line in f.read_text().splitlines()
        if line.strip()
    ]

    # Counted by id: every record gestor produced is stored exactly once.
    lines = g.log_lines()
    produced = [
        e
        for e in lines
        if e.get("event")
        in (
            "cycle",
            "keep",
            "kill",
            "kill_failed",
            "kill_skipped",
            "intent",
            "unmeasured",
            "error",
        )
    ]
    ids = {r["id"] for r in records} | {r["id"] for r in spooled}
    assert len(ids) == len(produced), f"{len(ids)} records kept for {len(produced)} produced"
    cycles = [e["cycle"] for e in lines if e.get("event") == "cycle"]
    decisions = [e for e in lines if e.get("event") in ("keep", "kill")]
    assert len({r["id"] for r in records}) == len(records)
    by_kind = Counter((r["event"], r["cycle"], r.get("container_name")) for r in records + spooled)
    duplicates = [k for k, n in by_kind.items() if n > 1]
    assert not duplicates, duplicates
    stored_cycles = sorted(r["cycle"] for r in records + spooled if r["event"] == "cycle")
    assert stored_cycles == sorted(cycles), (len(stored_cycles), len(cycles))
    missing = [e for e in decisions if (e["event"], e["cycle"], e["container"]) not in by_kind]
    assert not missing, f"lost {len(missing)} decision records: {missing[:3]}"
    print(
        f"log service down 60 s: {len(produced)} records produced, {len(records)} stored, "
        f"{len(spooled)} in the spool at exit, 0 lost, 0 duplicated"
    )


@pytest.mark.skipif(
    not Path("/usr/sbin/dockerd").exists(), reason="needs a dockerd this test may restart"
)
def test_dockerd_restart_mid_run(scope, make_gestor, workdir):
    """dockerd restarted under gestor (events inventory, a full listing every
    2 cycles): while Docker is away the inventory is stale and nothing is
    killed; once it is back the event stream is followed again after a resync,
    nothing is killed for the restart, the containers the restart stopped are
    removed as stopped (not counted as kills), governing resumes, and a quiet
    full listing finds no drift."""
    g = make_gestor(
        "--interval",
        str(INTERVAL),
        "--stop-timeout",
        "1",
        "--create-logger=false",
        "--logger-url",
        "",
        "--inventory",
        "events",
        "--resync-every",
        "2",
    )
    scope.generate(10, workdir)
    wait_until("first kills", 30, lambda: settled(scope))

    def all_kills() -> float:
        kinds = ("cpu", "ram", "io", "disk")
        return sum(
            g.metric(f'gestor_kills_total{{reason="surplus",rule="{t}",type="{t}"}}') for t in kinds
        )

    total_before = all_kills()
    assert total_before > 0
    resyncs_before = g.metric("gestor_inventory_resyncs_total")
    assert g.metric("gestor_inventory_stale") == 0

    def all_removals() -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in g.metrics().splitlines()
            if line.startswith("gestor_removals_total{")
        )

    removed_before = all_removals()
    # The keepers: the restart will stop them.
    keepers = {c["Names"] for c in scope.containers()}
    assert keepers

    pids = subprocess.run(
        ["pgrep", "-x", "dockerd"], capture_output=True, text=True, check=False
    ).stdout.split()
    assert pids, "no dockerd to restart"
    subprocess.run(["kill", "-TERM", *pids], check=True)
    wait_until(
        "dockerd gone",
        60,
        lambda: subprocess.run(["pgrep", "-x", "dockerd"], check=False).returncode != 0,
    )
    g.wait_cycles(2, 4 * INTERVAL)
    assert g.alive(), "gestor died with dockerd"
    assert g.metric('gestor_cycle_stage_success{stage="docker"}') == 0
    assert g.metric("gestor_inventory_stale") == 1, "the inventory outlived its event stream"
    assert all_kills() == total_before, "killed while Docker was away"

    subprocess.run([str(REPO / "scripts" / "ensure-docker.sh")], check=True, timeout=120)
    restarted = time.monotonic()
    wait_until(
        "gestor sees Docker again",
        2 * INTERVAL + 5,
        lambda: g.metric('gestor_cycle_stage_success{stage="docker"}') == 1,
    )
    recovered_in = time.monotonic() - restarted
    assert g.alive()
    assert g.metric("gestor_inventory_stale") == 0
    assert g.metric("gestor_inventory_resyncs_total") > resyncs_before, (
        "no resync after the stream came back"
    )
    # Without live-restore, dockerd's restart stopped the containers: none is
    # running, so none is killed; the stopped ones are removed once their
    # grace (one interval) is over, as stopped containers, not as kills.
    assert all_kills() == total_before, "a wrong kill after the restart"
    assert not scope.containers(), "containers still running after dockerd's restart"
    # And governing resumes: a new generator run is cut back to one per type.
    scope.generate(10, workdir)

    def resumed():
        everything = {c["Names"] for c in scope.containers(all_states=True)}
        one_each = all(len(v) <= 1 for v in scope.running_by_type().values())
        return one_each and not (everything & keepers)

    wait_until("kills after the restart, stopped ones removed", 40, resumed)
    assert all_kills() > total_before
    assert all_removals() >= removed_before + len(keepers)
    # Quiet now: the next full listings (every 2 cycles) find nothing the
    # events missed.
    wait_until("settled", 30, lambda: settled(scope))
    drift = g.metric("gestor_inventory_drift_total")
    g.wait_cycles(3, 6 * INTERVAL)
    assert g.metric("gestor_inventory_drift_total") == drift, (
        "the events missed something on a quiet host"
    )
    assert g.metric("gestor_inventory_stale") == 0
    print(
        f"dockerd restart: gestor recovered in {recovered_in:.1f} s, no crash, no wrong kill, "
        f"{len(keepers)} stopped containers removed, drift {drift:.0f} in total, none once quiet"
    )
