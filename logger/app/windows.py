"""Graph time windows, their buckets and the request for one graph (no
matplotlib here: the service process computes windows and requests, the
render process draws them).

Windows are aligned to whole buckets of a round width, so that requests for
"the last hour" made a few seconds apart ask for the same buckets and can
share one rendered PNG, and points do not shift from one refresh to the next.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import MAX_MS

# Bucket widths to pick from (ms): whole minutes, the rollups' grain (the
# graphs read per-minute rollups, so a graph's cost follows its minutes and
# hosts, not its records).
MINUTE_MS = 60_000
NICE_BUCKETS_MS = [
    s * 1000 for s in (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
] + [7 * 86400 * 1000, 30 * 86400 * 1000]


@dataclass(frozen=True)
class Window:
    since_ms: int
    until_ms: int

    @property
    def span_ms(self) -> int:
        return max(self.until_ms - self.since_ms, 1)


@dataclass(frozen=True)
class GraphRequest:
    """Everything a PNG depends on besides the data: the cache key."""

    kind: str
    since_ms: int
    until_ms: int
    bucket_ms: int
    width: int
    height: int
    host: str | None = None  # one host's records only (None: every host)


def bucket_ms(window: Window, max_buckets: int) -> int:
    """The smallest nice bucket width giving at most ``max_buckets`` buckets."""
    for width in NICE_BUCKETS_MS:
        if window.span_ms / width <= max_buckets:
            return width
    width = -(-window.span_ms // max_buckets)
    return -(-width // MINUTE_MS) * MINUTE_MS


def max_buckets(kind: str, width: int) -> int:
    """About one point per 3 pixels for lines, one bar per 12 pixels for kills."""
    if kind == "kills":
        return max(min(width // 12, 120), 10)
    return max(min(width // 3, 600), 20)


def align(since_ms: int, until_ms: int, max_buckets: int) -> tuple[Window, int]:
    """The window widened to whole buckets, and the bucket width."""
    width = bucket_ms(Window(since_ms, until_ms), max_buckets)
    since = since_ms // width * width
    until = min(-(-until_ms // width) * width, MAX_MS + 1)
    return Window(since, max(until, since + width)), width
