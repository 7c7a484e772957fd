"""GET /healthz (the container's health check) and GET /stats (running counters)."""

from __future__ import annotations

import sqlite3

from fastapi import APIRouter, HTTPException, status

from .. import __version__
from ..db import StorageError
from ..deps import READ_AUTH_RESPONSES, DbDep, ReadAuth, SettingsDep
from ..metrics import disk_free_bytes
from ..models import Health, Stats

router = APIRouter(tags=["health"])


def unhealthy(message: str) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, message)


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"description": "The database cannot be read or written, or the disk is full"}},
)
def healthz(db: DbDep, settings: SettingsDep) -> Health:
    """200 when the database answers a query *and* takes a write (a real commit),
    and the data directory has at least LOGGER_MIN_FREE_BYTES free; else 503."""
    try:
        db.ping()
    except (sqlite3.Error, StorageError) as exc:
        raise unhealthy(f"database cannot be read: {exc}") from None
    try:
        db.probe_write()
    except (sqlite3.Error, StorageError) as exc:
        raise unhealthy(f"database cannot be written: {exc}") from None
    free = disk_free_bytes(settings.data_dir)
    if free < settings.min_free_bytes:
        raise unhealthy(
            f"only {free} bytes free on {settings.data_dir}"
            f" (LOGGER_MIN_FREE_BYTES={settings.min_free_bytes})"
        )
    return Health(
        status="ok",
        version=__version__,
        records=db.counters.total,
        token_required=settings.token_required,
        disk_free_bytes=free,
    )


@router.get("/stats", response_model=Stats, dependencies=[ReadAuth], responses=READ_AUTH_RESPONSES)
def stats(db: DbDep) -> Stats:
    """Records stored per event, kills per container type, the last cycle record."""
    return Stats(**db.counters.as_dict())
