"""POST /logs (ingest), GET /logs (query) and GET /logs/export (JSON Lines)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import TypeAdapter, ValidationError
from pydantic_core import from_json

from ..db import Filters
from ..deps import (
    READ_AUTH_RESPONSES,
    BroadcasterDep,
    DbDep,
    MetricsDep,
    ReadAuth,
    SettingsDep,
    invalid,
    parse_time,
)
from ..ingest import (
    MAX_ERRORS,
    WRITE_RESPONSES,
    InvalidBody,
    body_error,
    require_json,
    require_token,
    store_body,
)
from ..models import (
    MAX_MS,
    MIN_MS,
    ContainerType,
    HostsPage,
    HostTotals,
    IngestResult,
    LogPage,
    LogRecordIn,
    StoredEvent,
    utc_text,
)

router = APIRouter(prefix="/logs", tags=["logs"])

_BATCH = TypeAdapter(list[LogRecordIn])
_RECORD_ID = re.compile(r"[!-~]{1,128}")


def parse_records(body: bytes) -> list[tuple[LogRecordIn, dict[str, Any]]]:
    """Validated records with the JSON objects they came from (kept whole)."""
    shape = "expected a record (object) or an array of records"
    if not body.strip():
        raise InvalidBody(
            "invalid_json",
            [{"type": "value_error", "loc": ["body", "body"], "msg": f"empty body: {shape}"}],
        )
    try:
        data = from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        raise InvalidBody(
            "invalid_json",
            [{"type": "json_invalid", "loc": ["body"], "msg": f"invalid JSON: {exc}"}],
        ) from None
    if isinstance(data, dict):
        items, prefix_of = [data], (lambda _i: ())
    elif isinstance(data, list):
        items, prefix_of = data, (lambda i: (i,))
    else:
        raise InvalidBody(
            "invalid_json", [{"type": "value_error", "loc": ["body", "body"], "msg": shape}]
        )
    records: list[LogRecordIn] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            records.append(LogRecordIn.model_validate(item))
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_context=False):
                errors.append(body_error(err, prefix_of(index)))
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        raise InvalidBody("invalid_record", errors[:MAX_ERRORS])
    return list(zip(records, items, strict=True))


@router.post(
    "",
    response_model=IngestResult,
    dependencies=[Depends(require_token), Depends(require_json)],
    responses={
        **WRITE_RESPONSES,
        422: {"description": "Invalid JSON or record; `loc` names the bad field"},
    },
)
async def post_logs(
    request: Request,
    settings: SettingsDep,
    db: DbDep,
    broadcaster: BroadcasterDep,
    metrics: MetricsDep,
) -> IngestResult:
    """Stores one record or a JSON array of records; idempotent on `id`.

    The response comes after the records are durably committed. Records whose
    id is already stored (a retried batch) count as duplicates and change nothing.
    """
    received, stored = await store_body(request, settings, db, broadcaster, metrics, parse_records)
    metrics.records_stored.inc(len(stored))
    metrics.records_duplicate.inc(received - len(stored))
    return IngestResult(received=received, stored=len(stored), duplicates=received - len(stored))


def _cursor_encode(time_ms: int, record_id: str) -> str:
    raw = json.dumps([time_ms, record_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_decode(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        time_ms, record_id = json.loads(raw)
        # Only what GET /logs hands out: a stored time and a stored id (so
        # nothing out of SQLite's range and no text that cannot be encoded).
        if not isinstance(time_ms, int) or isinstance(time_ms, bool):
            raise ValueError("time")
        if not MIN_MS <= time_ms <= MAX_MS:
            raise ValueError("time range")
        if not isinstance(record_id, str) or not _RECORD_ID.fullmatch(record_id):
            raise ValueError("id")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise invalid("query", "cursor", "not a cursor returned by GET /logs", cursor) from None
    return time_ms, record_id


def filters(
    container: Annotated[
        str | None, Query(max_length=255, description="Container name, id or id prefix")
    ] = None,
    type: Annotated[list[ContainerType] | None, Query(description="Container type")] = None,  # noqa: A002
    event: Annotated[
        list[StoredEvent] | None, Query(description="Event (`alert`: alert notifications)")
    ] = None,
    host: Annotated[str | None, Query(max_length=255)] = None,
    since: Annotated[
        str | None, Query(description="RFC 3339 time or Unix seconds (inclusive)")
    ] = None,
    until: Annotated[
        str | None, Query(description="RFC 3339 time or Unix seconds (inclusive)")
    ] = None,
) -> Filters:
    return Filters(
        container=container or None,
        types=tuple(type or ()),
        events=tuple(event or ()),
        host=host or None,
        since_ms=parse_time("since", since),
        until_ms=parse_time("until", until),
    )


FiltersDep = Annotated[Filters, Depends(filters)]


@router.get(
    "",
    response_model=LogPage,
    response_model_exclude_unset=True,
    dependencies=[ReadAuth],
    responses=READ_AUTH_RESPONSES,
)
def get_logs(
    db: DbDep,
    where: FiltersDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    cursor: Annotated[
        str | None, Query(max_length=1024, description="`next_cursor` of the previous page")
    ] = None,
) -> LogPage:
    """Stored records, newest first, filtered; page with `cursor` (or `offset`)."""
    before = _cursor_decode(cursor) if cursor else None
    rows = db.page(where, limit, offset, before)
    items = [json.loads(row[2]) for row in rows]
    next_cursor = _cursor_encode(rows[-1][0], rows[-1][1]) if len(rows) == limit else None
    return LogPage(
        items=items, count=len(items), limit=limit, offset=offset, next_cursor=next_cursor
    )


@router.get(
    "/hosts", response_model=HostsPage, dependencies=[ReadAuth], responses=READ_AUTH_RESPONSES
)
def get_hosts(
    db: DbDep,
    since: Annotated[
        str | None, Query(description="RFC 3339 time or Unix seconds (inclusive); all if unset")
    ] = None,
) -> HostsPage:
    """Per-host totals of gestor's records (alerts left out): records, cycles,
    kills, kill failures, errors and the newest record's time, since `since`."""
    since_ms = parse_time("since", since)
    rows = db.host_totals(since_ms)
    return HostsPage(
        since=utc_text(since_ms) if since_ms is not None else None,
        hosts=[
            HostTotals(
                host=h,
                records=n,
                cycles=c,
                kills=k,
                kill_failures=f,
                errors=e,
                last_time=utc_text(last) if last is not None else None,
            )
            for h, n, c, k, f, e, last in rows
        ],
    )


@router.get(
    "/export",
    response_class=StreamingResponse,
    dependencies=[ReadAuth],
    responses={200: {"content": {"application/x-ndjson": {}}}, **READ_AUTH_RESPONSES},
)
def export_logs(db: DbDep, where: FiltersDep) -> StreamingResponse:
    """Every matching record as JSON Lines (one record per line), oldest first, streamed."""

    def lines() -> Iterator[str]:
        for chunk in db.export(where):
            yield "\n".join(chunk) + "\n"

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="gestor-logs.jsonl"'},
    )
