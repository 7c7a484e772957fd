"""GET /healthz (the container's health check) and GET /stats (running counters)."""

from __future__ import annotations

import sqlite3

from fastapi import APIRouter, HTTPException, status

from .. import __version__
from ..deps import DbDep, SettingsDep
from ..models import Health, Stats

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz(db: DbDep, settings: SettingsDep) -> Health:
    """200 when the database answers a query, else 503."""
    try:
        db.ping()
    except sqlite3.Error as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"database: {exc}") from None
    return Health(
        status="ok",
        version=__version__,
        records=db.counters.total,
        token_required=settings.token_required,
    )


@router.get("/stats", response_model=Stats)
def stats(db: DbDep) -> Stats:
    """Records stored per event, kills per container type, the last cycle record."""
    return Stats(**db.counters.as_dict())
