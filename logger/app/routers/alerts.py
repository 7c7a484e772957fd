"""POST /alerts: Alertmanager's webhook receiver.

Alertmanager (docker-compose.yml's `alertmanager`, alertmanager/render.sh)
sends every notification here with the log service's bearer token. Each alert
in it is stored as a record with event `alert` (see app/alerts.py): `GET
/logs?event=alert` lists them, the live page shows them and which fire now.
"""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from pydantic_core import from_json

from ..alerts import records_of
from ..deps import BroadcasterDep, DbDep, MetricsDep, SettingsDep
from ..ingest import (
    MAX_ERRORS,
    WRITE_RESPONSES,
    InvalidBody,
    Parsed,
    body_error,
    require_json,
    require_token,
    store_body,
)
from ..models import AlertmanagerWebhookIn, IngestResult

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
        errors = [body_error(e, ()) for e in exc.errors(include_url=False, include_context=False)]
        raise InvalidBody("invalid_alert", errors[:MAX_ERRORS]) from None


def parse_alerts(body: bytes) -> Parsed:
    """The records of one notification, one per alert (all or none)."""
    return Parsed(records_of(parse_notification(body)))


@router.post(
    "",
    response_model=IngestResult,
    response_model_exclude_unset=True,
    dependencies=[Depends(require_token), Depends(require_json)],
    responses={
        **WRITE_RESPONSES,
        422: {"description": "Not an Alertmanager webhook notification; `loc` names the field"},
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
    parsed, stored = await store_body(request, settings, db, broadcaster, metrics, parse_alerts)
    received = parsed.received
    for key, n in Counter(raw["alert"]["status"] for raw in stored).items():
        metrics.alerts_stored.labels(key).inc(n)
    return IngestResult(received=received, stored=len(stored), duplicates=received - len(stored))
