"""Fan-out of newly stored records to the live page's Server-Sent Events streams."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anyio


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Events message (JSON data on one line), encoded once
    and handed as is to every open stream."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {text}\n\n".encode()


class Broadcaster:
    """Hands each published message to every subscriber's queue.

    Lives on the event loop: publish and subscribe from the loop's thread only.
    A subscriber that falls behind loses its oldest messages and is told to
    resynchronise (the page then reloads the list).
    """

    QUEUE_SIZE = 64

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[bytes | None]] = set()
        # Set by sse-starlette when the server is told to stop (see routers/live.py).
        self.shutdown = anyio.Event()

    async def close_on_shutdown(self) -> None:
        """Ends every stream once the server is stopping (a task of the app's life)."""
        await self.shutdown.wait()
        self.close()

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def subscribe(self) -> asyncio.Queue[bytes | None]:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(self.QUEUE_SIZE)
        if self.shutdown.is_set():
            queue.put_nowait(None)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes | None]) -> None:
        self._queues.discard(queue)

    def publish(self, message: bytes) -> None:
        for queue in self._queues:
            if queue.full():
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(sse("resync", {}))
            queue.put_nowait(message)

    def close(self) -> None:
        """Ends every stream (at shutdown); later subscribers end at once."""
        self.shutdown.set()
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
