"""The live page (GET /) and its Server-Sent Events stream (GET /events)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from sse_starlette import EventSourceResponse, JSONServerSentEvent

from ..deps import READ_AUTH_RESPONSES, BroadcasterDep, DbDep, ReadAuth, SettingsDep

# The page and its stream are reads: with LOGGER_READ_TOKEN set, a browser
# gets the Basic auth prompt on `/` and sends the same credentials with every
# request of the page (its fetches, images and EventSource).
router = APIRouter(tags=["live"], dependencies=[ReadAuth], responses=READ_AUTH_RESPONSES)

STATIC = Path(__file__).resolve().parent.parent / "static"
RECONNECT_MS = 1000
SHUTDOWN_GRACE_SECONDS = 0.3  # for the streams to end by themselves, then they are cut


@router.get("/", response_class=FileResponse, include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An endless stream"}},
)
async def events(
    db: DbDep, broadcaster: BroadcasterDep, settings: SettingsDep
) -> EventSourceResponse:
    """Server-Sent Events: `hello` (counters) at once, then `records` for every
    stored batch (newest first, with the counters), `resync` when this client
    fell behind; a comment every LOGGER_SSE_KEEPALIVE_SECONDS keeps it open.

    When the server is told to stop (SIGTERM), sse-starlette sets the shared
    shutdown event; the broadcaster then ends every stream cleanly (the last
    chunk is sent), so a shutdown does not wait for the browsers to leave."""

    async def stream() -> AsyncIterator[JSONServerSentEvent | bytes]:
        queue = broadcaster.subscribe()
        try:
            hello = {"counters": db.counters.as_dict()}
            yield JSONServerSentEvent(hello, event="hello", retry=RECONNECT_MS, sep="\n")
            while True:
                message = await queue.get()
                if message is None:  # the app is shutting down
                    return
                yield message
        finally:
            broadcaster.unsubscribe(queue)

    return EventSourceResponse(
        stream(),
        ping=settings.sse_keepalive_seconds,
        sep="\n",
        headers={"Cache-Control": "no-cache"},
        shutdown_event=broadcaster.shutdown,
        shutdown_grace_period=SHUTDOWN_GRACE_SECONDS,
    )
