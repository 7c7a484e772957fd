"""The ramp's arithmetic: when a step counts as held, and the fleet it carries."""

from __future__ import annotations

P99_LIMIT_MS = 250.0
NODE_INTERVAL_S = 10.0
HELD_SHARE = 0.97  # of the POSTs due in the step answered


def held(step: dict, limit_ms: float = P99_LIMIT_MS) -> bool:
    """A step is held when its p99 is within the limit, nothing failed, every
    record answered was newly stored (no id met twice) and the service
    answered (about) every POST due in the step (how many are due varies
    with the nodes' phases, so not the nominal nodes / 10 s)."""
    p99 = step.get("p99_ms")
    return (
        p99 is not None
        and p99 <= limit_ms
        and step.get("errors", 1) == 0
        and step["records_stored"] == step["posts_ok"] * step["records_per_post"]
        and step["posts_ok"] >= HELD_SHARE * step.get("posts_due", step["posts_ok"])
    )


def best_held(steps: list[dict], limit_ms: float = P99_LIMIT_MS) -> dict | None:
    """The step with the most POSTs per second among those held, if any."""
    ok = [s for s in steps if held(s, limit_ms)]
    return max(ok, key=lambda s: s["posts_per_second"]) if ok else None


def nodes_for(posts_per_second: float) -> int:
    """Nodes (one POST per cycle, a cycle every 10 s) that make this rate."""
    return round(posts_per_second * NODE_INTERVAL_S)
