"""The FastAPI application: ``uvicorn --factory app.main:create_app``.

On SQLite the service runs as exactly one process per data directory: the
database's single writer (group commit), the live page's broadcaster, the
graph cache and the counters all live in this process. A second process
(``uvicorn --workers 2``, a second container on the same volume) cannot take
the data directory's lock and refuses to start. On PostgreSQL any number of
workers share the database; what they must share lives there (postgres.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from pydantic import TypeAdapter

from . import __version__
from .config import Settings, get_settings
from .db import Database
from .events import Broadcaster, sse
from .limits import ConcurrencyLimitMiddleware, StreamLimits
from .metrics import LatencyMiddleware, Metrics
from .models import AlertmanagerWebhookIn, LogsBody
from .postgres import PostgresDatabase
from .render import Renderer
from .routers import api_router
from .routers.live import STATIC

log = logging.getLogger("logger")
WARM_RENDERER_AFTER_SECONDS = 2.0


class SingleWorkerLock:
    """An exclusive flock on ``<data dir>/logger.lock`` for the process's life.

    The kernel drops it when the process ends, however it ends (kill -9
    included), so a restarted service always gets it back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RuntimeError(
                f"another logger process (pid {holder}) serves {self.path.parent}: the log"
                " service runs as exactly one process per data directory (one uvicorn"
                " worker: no --workers or WEB_CONCURRENCY above 1, one container per volume)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def on_stop_signal(callback: Callable[[], None]) -> Callable[[], None]:
    """Calls ``callback`` as soon as SIGTERM or SIGINT arrives, before the
    server's own handler (uvicorn's, which starts the shutdown) runs; returns
    a function that removes the hook. Without it, open live-page streams end
    only when sse-starlette next polls for the shutdown (every 0.5 s).

    Signal handlers belong to the main thread: elsewhere (TestClient runs the
    app in a thread) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    hooks: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum: int, frame: Any, previous: Any = previous) -> None:
            callback()
            previous(signum, frame)

        signal.signal(sig, handler)
        hooks[sig] = (handler, previous)

    def remove() -> None:
        for sig, (handler, previous) in hooks.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, previous)

    return remove


def open_database(settings: Settings) -> Database | PostgresDatabase:
    """The engine LOGGER_DATABASE_URL names, its schema brought up to date."""
    if settings.is_postgres:
        return PostgresDatabase(settings.postgres_url)
    return Database(settings.db_path, settings.synchronous)


def retention_pass(state: Any, settings: Settings, stop: threading.Event) -> None:
    """Deletes what LOGGER_RETENTION no longer keeps, in small batches, then
    gives the freed pages back to the file system."""
    retention = settings.retention_ms
    if retention is None:
        return
    db: Database | PostgresDatabase = state.db
    metrics: Metrics = state.metrics
    cut = int(time.time() * 1000) - retention

    def counted(n: int) -> None:
        metrics.retention_deleted.inc(n)
        metrics.retention_batches.inc()

    # A pause between batches leaves room for ingestion.
    deleted, batches = db.delete_before(
        cut, settings.retention_batch, pause=0.005, stop=stop, on_batch=counted
    )
    if deleted:
        log.info(
            "retention: deleted %d records older than %s in %d batches",
            deleted,
            settings.retention,
            batches,
        )
    if db.vacuum(stop):
        db.checkpoint()


async def retention_loop(app: FastAPI, settings: Settings, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            await anyio.to_thread.run_sync(retention_pass, app.state, settings, stop)
        except Exception:  # logged; the next pass tries again
            log.exception("retention pass failed")
        await asyncio.sleep(settings.retention_interval_seconds)


def openapi_with_record_schema(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus the bodies of POST /logs and POST /alerts (read
    as raw bytes by the routes, so FastAPI cannot describe them by itself)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    body = TypeAdapter(LogsBody).json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(body.pop("$defs", {}))
    schema["paths"]["/logs"]["post"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": body}},
    }
    alerts = AlertmanagerWebhookIn.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(alerts.pop("$defs", {}))
    components["AlertmanagerWebhookIn"] = alerts
    schema["paths"]["/alerts"]["post"]["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/AlertmanagerWebhookIn"}}
        },
    }
    app.openapi_schema = schema
    return schema


class Service:
    """What the app's lifespan starts and stops, in order."""

    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.lock = SingleWorkerLock(settings.lock_path)
        self.stop_retention = threading.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.remove_hook: Callable[[], None] = lambda: None
        self.signalled: float | None = None  # time.monotonic() of SIGTERM/SIGINT

    async def start(self) -> None:
        settings, state = self.settings, self.app.state
        if not settings.is_postgres:
            self.lock.acquire()
        else:  # holds no database, but the health check watches its free space
            with contextlib.suppress(OSError):
                settings.data_dir.mkdir(parents=True, exist_ok=True)
        opening = time.monotonic()
        state.db = await anyio.to_thread.run_sync(open_database, settings)
        log.info(
            "%s database opened in %.4f s (%d records)",
            state.db.engine,
            time.monotonic() - opening,
            state.db.counters.total,
        )
        broadcaster = Broadcaster()
        state.broadcaster = broadcaster
        loop = asyncio.get_running_loop()
        if isinstance(state.db, PostgresDatabase):
            db = state.db

            def show(records: list[dict[str, Any]]) -> None:  # on the loop
                if broadcaster.subscribers:
                    message = {"records": records, "counters": db.counters.as_dict()}
                    broadcaster.publish(sse("records", message))

            # Records other workers stored reach this worker's live streams too.
            db.follow(lambda records: loop.call_soon_threadsafe(show, records))
        renderer = Renderer(
            settings.database_locator,  # type: ignore[arg-type]
            mode=settings.render_mode,
            nice=settings.render_nice,
            slots=settings.render_slots,
            queue=settings.render_queue,
            cache_entries=settings.graph_cache_entries,
            timeout=settings.render_timeout_seconds,
        )
        state.renderer = renderer
        # The render process starts a little later, off the start-up's path.
        loop.call_later(WARM_RENDERER_AFTER_SECONDS, renderer.warm)

        def stopping() -> None:  # on the loop, as soon as SIGTERM arrives
            broadcaster.shutdown.set()
            renderer.stop()

        def signalled() -> None:  # in the signal handler: as little as possible
            self.signalled = time.monotonic()
            loop.call_soon_threadsafe(stopping)

        self.remove_hook = on_stop_signal(signalled)
        self.tasks.append(asyncio.ensure_future(broadcaster.close_on_shutdown()))
        self.tasks.append(
            asyncio.ensure_future(retention_loop(self.app, settings, self.stop_retention))
        )
        if not settings.token_required:
            log.warning("LOGGER_TOKEN is not set: anyone who reaches the port can write")

    async def stop(self) -> None:
        state = self.app.state
        self.remove_hook()
        self.stop_retention.set()
        if state.broadcaster is not None:
            state.broadcaster.close()
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if state.renderer is not None:
            state.renderer.close()
        if state.db is not None:
            state.db.close()
        state.db = state.broadcaster = state.renderer = None
        self.lock.release()
        if self.signalled is not None:
            log.info("stopped %.3f s after the stop signal", time.monotonic() - self.signalled)


def _log_to_stderr() -> None:
    """The service's own messages beside uvicorn's, in the same shape."""
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def create_app(settings: Settings | None = None) -> FastAPI:
    """Builds the app; the database opens at start-up and closes at shutdown."""
    settings = settings or get_settings()
    _log_to_stderr()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = Service(app, settings)
        try:
            await service.start()
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="gestor logger",
        version=__version__,
        summary="Durable JSON log records from gestor, graphs and a live page.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = app.state.broadcaster = app.state.renderer = None
    app.state.metrics = Metrics(app.state)
    app.include_router(api_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.stream_limits = StreamLimits(
        settings.sse_max_streams, settings.sse_max_streams_per_client
    )
    app.add_middleware(ConcurrencyLimitMiddleware, limit=settings.max_concurrent_requests)
    app.add_middleware(LatencyMiddleware, metrics=app.state.metrics)
    app.openapi = lambda: openapi_with_record_schema(app)  # type: ignore[method-assign]
    return app
