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
    Parsed,
    field_error,
    non_finite_errors,
    rejection,
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
    RejectedRecord,
    StoredEvent,
    utc_text,
)

router = APIRouter(prefix="/logs", tags=["logs"])

_BATCH = TypeAdapter(list[LogRecordIn])
# Values a repeated filter parameter may have (`type=cpu&type=ram...`),
# repeats included: the choices are few, so more is a client gone wrong.
MAX_FILTER_VALUES = 32
# `offset` makes the database walk past every skipped row: deeper pages
# come with the keyset cursor, whose cost does not grow with depth.
MAX_OFFSET = 10_000
_RECORD_ID = re.compile(r"[!-~]{1,128}")


def check_record(item: Any) -> tuple[LogRecordIn | None, list[dict[str, Any]]]:
    """The record, or the errors that refuse it, located within it: not an
    object, a number that is not finite anywhere in it (extra fields
    included), or a field the model refuses."""
    if not isinstance(item, dict):
        return None, [{"type": "model_type", "loc": [], "msg": "expected a record (an object)"}]
    errors = non_finite_errors(item)
    if errors:
        return None, errors
    try:
        return LogRecordIn.model_validate(item), []
    except ValidationError as exc:
        return None, [
            field_error(err) for err in exc.errors(include_url=False, include_context=False)
        ]


def parse_records(body: bytes) -> list[tuple[LogRecordIn, dict[str, Any]]]:
    """The records of a body that must be valid whole (the storage tests and
    benches feed ``Database.insert`` with it): a 422 for any invalid record."""
    parsed = parse_batch(body)
    if parsed.rejected:
        errors = [
            {**e, "loc": ["body", r["index"], *e["loc"]]}
            for r in parsed.rejected
            for e in r["errors"]
        ]
        raise InvalidBody("invalid_record", errors[:MAX_ERRORS])
    return parsed.records


def parse_batch(body: bytes) -> Parsed:
    """Validated records with the JSON objects they came from (kept whole).

    One record (an object) that is invalid is a 422. In a batch (an array)
    each invalid record is set aside and named (``rejected``); the others are
    stored: one bad record costs only itself."""
    shape = "expected a record (object) or an array of records"
    if not body.strip():
        raise InvalidBody(
            "invalid_json",
            [{"type": "value_error", "loc": ["body", "body"], "msg": f"empty body: {shape}"}],
        )
    try:
        # NaN and Infinity are parsed, then refused per record like 1e999.
        data = from_json(body, allow_inf_nan=True)
    except ValueError as exc:
        raise InvalidBody(
            "invalid_json",
            [{"type": "json_invalid", "loc": ["body"], "msg": f"invalid JSON: {exc}"}],
        ) from None
    if isinstance(data, dict):
        record, errors = check_record(data)
        if record is None:
            raise InvalidBody(
                "invalid_record", [{**e, "loc": ["body", *e["loc"]]} for e in errors][:MAX_ERRORS]
            )
        return Parsed([(record, data)])
    if not isinstance(data, list):
        raise InvalidBody(
            "invalid_json", [{"type": "value_error", "loc": ["body", "body"], "msg": shape}]
        )
    parsed = Parsed([])
    for index, item in enumerate(data):
        record, errors = check_record(item)
        if record is None:
            parsed.rejected.append(rejection(index, item, errors))
        else:
            parsed.records.append((record, item))
    return parsed


@router.post(
    "",
    response_model=IngestResult,
    response_model_exclude_unset=True,  # `rejected` only when some are
    dependencies=[Depends(require_token), Depends(require_json)],
    responses={
        **WRITE_RESPONSES,
        422: {
            "description": "Invalid JSON, not a record or an array, or a single record"
            " that is invalid; `loc` names the bad field"
        },
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
    id is already stored (a retried batch) count as duplicates and change
    nothing. Invalid records of a batch are not stored and are listed in
    `rejected` (index, id, errors): the others are stored all the same.
    """
    parsed, stored = await store_body(request, settings, db, broadcaster, metrics, parse_batch)
    duplicates = len(parsed.records) - len(stored)
    metrics.records_stored.inc(len(stored))
    metrics.records_duplicate.inc(duplicates)
    result = IngestResult(received=parsed.received, stored=len(stored), duplicates=duplicates)
    if parsed.rejected:
        result.rejected = [RejectedRecord(**r) for r in parsed.rejected]
    return result


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
    for name, values in (("type", type), ("event", event)):
        if values and len(values) > MAX_FILTER_VALUES:
            raise invalid(
                "query", name, f"at most {MAX_FILTER_VALUES} values (repeats included)", len(values)
            )
    return Filters(
        container=container or None,
        types=tuple(dict.fromkeys(type or ())),  # repeats once, in their order
        events=tuple(dict.fromkeys(event or ())),
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
    offset: Annotated[
        int,
        Query(
            ge=0,
            description=f"Rows to skip, at most {MAX_OFFSET}; page deeper with `cursor`",
            json_schema_extra={"maximum": MAX_OFFSET},
        ),
    ] = 0,
    cursor: Annotated[
        str | None, Query(max_length=1024, description="`next_cursor` of the previous page")
    ] = None,
) -> LogPage:
    """Stored records, newest first, filtered; page with `cursor` (or `offset`)."""
    if offset > MAX_OFFSET:
        raise invalid(
            "query",
            "offset",
            f"offset is at most {MAX_OFFSET}: page deeper with `cursor` (pass each page's"
            " `next_cursor`), whose cost does not grow with the depth",
            offset,
        )
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
