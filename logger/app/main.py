"""The FastAPI application: ``uvicorn --factory app.main:create_app``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from . import __version__
from .config import Settings, get_settings
from .db import Database
from .events import Broadcaster
from .routers import api_router
from .routers.live import STATIC


def create_app(settings: Settings | None = None) -> FastAPI:
    """Builds the app; the database opens at start-up and closes at shutdown."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.db_path, settings.synchronous)
        app.state.db = db
        app.state.broadcaster = Broadcaster()
        try:
            yield
        finally:
            app.state.broadcaster.close()
            db.close()

    app = FastAPI(
        title="gestor logger",
        version=__version__,
        summary="Durable JSON log records from gestor, graphs and a live page.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(api_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
