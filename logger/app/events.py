"""Fan-out of newly stored records to the live page's Server-Sent Events streams."""

from __future__ import annotations

import asyncio
import json
from typing import Any


def sse(event: str, data: Any) -> str:
    """One Server-Sent Events message (JSON data on one line)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {text}\n\n"


class Broadcaster:
    """Hands each published message to every subscriber's queue.

    Lives on the event loop: publish and subscribe from the loop's thread only.
    A subscriber that falls behind loses its oldest messages and is told to
    resynchronise (the page then reloads the list).
    """

    QUEUE_SIZE = 64

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[str | None]] = set()

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def subscribe(self) -> asyncio.Queue[str | None]:
        queue: asyncio.Queue[str | None] = asyncio.Queue(self.QUEUE_SIZE)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        self._queues.discard(queue)

    def publish(self, message: str) -> None:
        for queue in self._queues:
            if queue.full():
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(sse("resync", {}))
            queue.put_nowait(message)

    def close(self) -> None:
        """Ends every stream (at shutdown)."""
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
