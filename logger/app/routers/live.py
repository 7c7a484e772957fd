"""The live page (GET /) and its Server-Sent Events stream (GET /events)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, StreamingResponse

from ..deps import BroadcasterDep, DbDep, SettingsDep
from ..events import sse

router = APIRouter(tags=["live"])

STATIC = Path(__file__).resolve().parent.parent / "static"


@router.get("/", response_class=FileResponse, include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/events", response_class=StreamingResponse)
async def events(
    db: DbDep, broadcaster: BroadcasterDep, settings: SettingsDep
) -> StreamingResponse:
    """Server-Sent Events: `hello` (counters) at once, then `records` for every
    stored batch (newest first, with the counters), `resync` when this client
    fell behind; a comment every LOGGER_SSE_KEEPALIVE_SECONDS keeps it open."""
    queue = broadcaster.subscribe()
    keepalive = settings.sse_keepalive_seconds

    async def stream() -> AsyncIterator[str]:
        try:
            yield "retry: 1000\n" + sse("hello", {"counters": db.counters.as_dict()})
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=keepalive)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if message is None:
                    return
                yield message
        finally:
            broadcaster.unsubscribe(queue)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
