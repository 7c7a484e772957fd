"""Bounds that keep any reader from taking the service: live streams per
client and in total, and requests in flight (an ASGI middleware).

Pure bookkeeping on the event loop's thread; no I/O but the 503 the
middleware writes."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

# Never refused by the request cap: the container's health check and
# Prometheus must see an overloaded service as it is, and live streams have a
# bound of their own.
UNCAPPED_PATHS = frozenset({"/health", "/healthz", "/metrics", "/events"})
RETRY_AFTER_SECONDS = 1


class StreamLimitError(Exception):
    """Why a stream cannot be opened now, and the status that says it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class StreamLease:
    """One open stream's place; ``release`` is idempotent (a stream ends by
    itself, by its client leaving, or never starts)."""

    def __init__(self, limits: StreamLimits, client: str) -> None:
        self._limits = limits
        self.client = client
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._limits.give_back(self.client)


class StreamLimits:
    """Live-page streams open now, per client address and in total."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self._open: Counter[str] = Counter()

    @property
    def open(self) -> int:
        return sum(self._open.values())

    def acquire(self, client: str) -> StreamLease:
        """A place for one more stream of ``client``, or StreamLimitError: 429
        when this client has its share open, 503 when the service has all."""
        if self._open[client] >= self.per_client:
            raise StreamLimitError(
                429,
                f"this client has {self.per_client} live streams open"
                " (LOGGER_SSE_MAX_STREAMS_PER_CLIENT): close one first",
            )
        if self.open >= self.total:
            raise StreamLimitError(
                503,
                f"the service has {self.total} live streams open (LOGGER_SSE_MAX_STREAMS):"
                " try again later",
            )
        self._open[client] += 1
        return StreamLease(self, client)

    def give_back(self, client: str) -> None:
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]


class ConcurrencyLimitMiddleware:
    """At most ``limit`` HTTP requests in flight; more are answered at once
    with 503 and Retry-After (cheap: nothing is read or parsed), so a burst of
    readers cannot queue up work and memory without bound."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNCAPPED_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await self._busy(send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _busy(self, send: Send) -> None:
        body = json.dumps(
            {
                "detail": f"{self.limit} requests are in flight (LOGGER_MAX_CONCURRENT_REQUESTS):"
                f" try again in {RETRY_AFTER_SECONDS} s"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
