"""POST /alerts: Alertmanager's webhook receiver.

Alertmanager (docker-compose.yml's `alertmanager`, alertmanager/alertmanager.yml)
sends every notification here with the log service's bearer token. Each alert
in it is stored as a record with event `alert` (see app/alerts.py): `GET
/logs?event=alert` lists them, the live page shows them and which fire now.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from pydantic_core import from_json

from ..alerts import records_of
from ..db import Database
from ..deps import BroadcasterDep, DbDep, MetricsDep, SettingsDep
from ..events import sse
from ..models import AlertmanagerWebhookIn, IngestResult
from .logs import (
    LIVE_BATCH,
    MAX_ERRORS,
    RETRY_AFTER_SECONDS,
    InvalidBody,
    _error,
    read_body,
    rejected,
    require_json,
    require_token,
)

router = APIRouter(prefix="/alerts", tags=["alerts"])


def parse_notification(body: bytes) -> AlertmanagerWebhookIn:
    """The notification, or a 422 naming the bad field (nothing is stored)."""
    if not body.strip():
        raise InvalidBody(
            "invalid_json",
            [{"type": "value_error", "loc": ["body"], "msg": "empty body: not a notification"}],
        )
    try:
        data = from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        raise InvalidBody(
            "invalid_json",
            [{"type": "json_invalid", "loc": ["body"], "msg": f"invalid JSON: {exc}"}],
        ) from None
    if not isinstance(data, dict):
        raise InvalidBody(
            "invalid_json",
            [
                {
                    "type": "value_error",
                    "loc": ["body"],
                    "msg": "expected an Alertmanager webhook notification (a JSON object)",
                }
            ],
        )
    try:
        return AlertmanagerWebhookIn.model_validate(data)
    except ValidationError as exc:
        errors = [_error(e, ()) for e in exc.errors(include_url=False, include_context=False)]
        raise InvalidBody("invalid_alert", errors[:MAX_ERRORS]) from None


def _ingest(db: Database, body: bytes) -> tuple[int, list[dict[str, Any]], dict[str, int]]:
    records = records_of(parse_notification(body))
    stored = db.insert(records)
    by_status: dict[str, int] = {}
    for raw in stored:
        key = raw["alert"]["status"]
        by_status[key] = by_status.get(key, 0) + 1
    return len(records), stored, by_status


@router.post(
    "",
    response_model=IngestResult,
    dependencies=[Depends(require_token), Depends(require_json)],
    responses={
        400: {"description": "Invalid Content-Length, or the sender went away mid-body"},
        401: {"description": "LOGGER_TOKEN is set and the bearer token is missing or wrong"},
        413: {"description": "Body larger than LOGGER_MAX_BODY_BYTES"},
        415: {"description": "The body is not declared `Content-Type: application/json`"},
        422: {"description": "Not an Alertmanager webhook notification; `loc` names the field"},
        503: {
            "description": "The database cannot be written (disk full, read-only): retry later",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        },
    },
)
async def post_alerts(
    request: Request,
    settings: SettingsDep,
    db: DbDep,
    broadcaster: BroadcasterDep,
    metrics: MetricsDep,
) -> IngestResult:
    """Stores the alerts of one Alertmanager notification (webhook format 4),
    one record each (event `alert`), all or none; idempotent: a repeated or
    retried notification of the same alert occurrence stores nothing new.

    Answers after the records are durably committed. A 5xx makes Alertmanager
    retry; a 4xx is final (the notification is not what this endpoint takes).
    """
    body = await read_body(request, settings.max_body_bytes, metrics)
    try:
        received, stored, by_status = await run_in_threadpool(_ingest, db, body)
    except InvalidBody as exc:
        raise rejected(metrics, exc.reason, exc) from None
    except sqlite3.Error as exc:
        raise rejected(
            metrics,
            "storage_error",
            HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"the database cannot be written: {exc}",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            ),
        ) from None
    for key, n in by_status.items():
        metrics.alerts_stored.labels(key).inc(n)
    if stored and broadcaster.subscribers:
        newest = sorted(stored, key=lambda r: r["time"], reverse=True)[:LIVE_BATCH]
        broadcaster.publish(sse("records", {"records": newest, "counters": db.counters.as_dict()}))
    return IngestResult(received=received, stored=len(stored), duplicates=received - len(stored))
