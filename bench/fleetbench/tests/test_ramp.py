"""The ramp's arithmetic (run: logger/.venv/bin/python -m pytest bench/fleetbench)."""

from __future__ import annotations

from fleetbench import ramp


def step(**fields: float) -> dict:
    base = {
        "offered_posts_per_second": 100.0,
        "posts_per_second": 100.0,
        "posts_ok": 2000,
        "posts_due": 2000,
        "records_per_post": 8,
        "records_stored": 16000,
        "p99_ms": 120.0,
        "errors": 0,
    }
    return base | fields


def test_a_step_is_held_only_when_fast_complete_and_clean() -> None:
    assert ramp.held(step())
    assert not ramp.held(step(p99_ms=250.1))
    assert not ramp.held(step(p99_ms=None))
    assert not ramp.held(step(errors=1))
    assert not ramp.held(step(records_stored=15992))  # one batch met ids already stored
    assert not ramp.held(step(posts_ok=1900, records_stored=15200))  # POSTs went unanswered
    # Fewer POSTs than nodes / 10 s fell due in a short step: still held.
    assert ramp.held(step(posts_per_second=96.0))


def test_the_best_held_step_and_the_fleet_it_carries() -> None:
    steps = [step(posts_per_second=25.0), step(posts_per_second=99.0), step(p99_ms=900.0)]
    assert ramp.best_held(steps)["posts_per_second"] == 99.0
    assert ramp.best_held([step(errors=3)]) is None
    assert ramp.nodes_for(50.0) == 500
