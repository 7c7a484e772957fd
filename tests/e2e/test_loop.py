"""The whole loop on a real Docker engine: the real generator fires three
times 30 s apart, gestor (userspace source, its own log container) governs,
a real Prometheus scrapes it."""

from __future__ import annotations

import time
from collections import Counter

from harness import Prometheus, http_get, wait_until

INTERVAL = 10  # the real default
STOP_TIMEOUT = 2
# One cycle, the stop grace, and slack for a loaded 2-core machine.
SETTLE = INTERVAL + STOP_TIMEOUT + 8


def one_per_present_type(scope) -> dict[str, list[str]] | None:
    """The running managed containers by type, once at most one of each type
    runs and every kill is complete (no container left stopped, unremoved)."""
    by_type = scope.running_by_type()
    if not all(len(names) <= 1 for names in by_type.values()):
        return None
    if len(scope.containers(all_states=True)) != len(scope.containers()):
        return None
    return by_type


def test_generator_gestor_logger_prometheus(scope, make_gestor, workdir):
    g = make_gestor("--interval", str(INTERVAL), "--stop-timeout", str(STOP_TIMEOUT))
    wait_until(
        "the log service container is healthy", 120, lambda: http_get(g.logger_url("/healthz"))
    )
    prom = Prometheus(g.port, workdir)
    try:
        seen_types: set[str] = set()
        created_by_type: Counter[str] = Counter()
        for run in range(3):
            started = time.monotonic()
            created = scope.generate(10, workdir)
            assert len(created) == 10, created
            seen_types |= {name.split("-", 1)[0] for name in created}
            created_by_type.update(name.split("-", 1)[0] for name in created)
            survivors = wait_until(
                f"one container per type after run {run + 1}",
                SETTLE,
                lambda: one_per_present_type(scope),
            )
            # Exactly one per type that has containers, and nothing left exited.
            for t in seen_types:
                assert len(survivors[t]) == 1, (t, survivors)
            # The survivors are the ones the policy said it keeps.
            g.wait_cycles(1, INTERVAL + 10)
            kept = {c["name"] for c in g.state()["containers"] if c["action"] == "keep"}
            assert {n for names in survivors.values() for n in names} == kept
            if run < 2:
                time.sleep(max(0.0, 30 - (time.monotonic() - started)))

        kills = g.events("kill")
        keeps = g.events("keep")
        final = [n for names in scope.running_by_type().values() for n in names]
        # Every generated container but the survivors was killed, once.
        assert len(kills) == 30 - len(final), (len(kills), final)
        assert len({e["container"] for e in kills}) == len(kills)

        # The log service holds a record for every kill and every keep.
        def shipped():
            return g.metric("gestor_log_queue_records") == 0

        wait_until("the log queue to drain", 60, shipped)
        records = g.logger_records()
        logged = {(r["event"], r["cycle"], r["container_name"]) for r in records}
        for e in kills + keeps:
            assert (e["event"], e["cycle"], e["container"]) in logged, e
        assert len({r["id"] for r in records}) == len(records)

        # Its graphs render with those data.
        for kind in ("memory", "cpu", "kills"):
            png = http_get(g.logger_url(f"/graphs/{kind}.png?range=1h"), timeout=30)
            assert png[:8] == b"\x89PNG\r\n\x1a\n", kind
            assert len(png) > 5000, kind

        # Prometheus holds the containers' series and the kill counters match
        # (once it has scraped gestor after the last kill).
        def prometheus_kills() -> int | None:
            total = prom.query("sum(gestor_kills_total)")
            return int(float(total[0]["value"][1])) if total else None

        wait_until(
            f"Prometheus to count {len(kills)} kills", 30, lambda: prometheus_kills() == len(kills)
        )
        names = {r["metric"]["name"] for r in prom.query("gestor_container_memory_bytes")}
        for t, survivors_of_t in scope.running_by_type().items():
            for n in survivors_of_t:
                assert n in names, (t, n, names)
        # Per type: every container of it but its one survivor was killed (a
        # type the generator made once, at random, has no kill and no series).
        for t in seen_types:
            series = prom.query(f'sum(gestor_kills_total{{type="{t}"}})')
            counted = int(float(series[0]["value"][1])) if series else 0
            assert counted == created_by_type[t] - 1, (t, counted, dict(created_by_type))
    finally:
        prom.stop()
