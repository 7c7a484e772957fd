"""POST /logs (ingest), GET /logs (query) and GET /logs/export (JSON Lines)."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import TypeAdapter, ValidationError
from pydantic_core import from_json
from starlette.requests import ClientDisconnect

from ..config import Settings
from ..db import Database, Filters
from ..deps import (
    BroadcasterDep,
    DbDep,
    MetricsDep,
    SettingsDep,
    get_metrics,
    get_settings,
    invalid,
    parse_time,
)
from ..events import Broadcaster, sse
from ..metrics import Metrics
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

MAX_ERRORS = 20
LIVE_BATCH = 100
RETRY_AFTER_SECONDS = 5
_BATCH = TypeAdapter(list[LogRecordIn])
_RECORD_ID = re.compile(r"[!-~]{1,128}")


def rejected(metrics: Metrics, reason: str, error: HTTPException) -> HTTPException:
    metrics.rejected.labels(reason).inc()
    return error


def require_token(
    request: Request,
    settings: Annotated[Settings, Depends(get_settings)],
    metrics: Annotated[Metrics, Depends(get_metrics)],
) -> None:
    """401 unless ``Authorization: Bearer <LOGGER_TOKEN>`` (when a token is set)."""
    if not settings.token_required:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    expected = settings.token or ""
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        raise rejected(
            metrics,
            "unauthorized",
            HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            ),
        )


def require_json(request: Request, metrics: Annotated[Metrics, Depends(get_metrics)]) -> None:
    """415 unless the body is declared ``application/json``.

    A web page can send a cross-origin POST without a CORS preflight only as
    text/plain, a form or multipart; requiring application/json means a page
    the operator happens to open cannot write records (the browser would have
    to ask first, and this service never allows it)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise rejected(
            metrics,
            "unsupported_media_type",
            HTTPException(
                status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                "send the records as Content-Type: application/json",
            ),
        )


def _too_large(limit: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE, f"body larger than {limit} bytes (LOGGER_MAX_BODY_BYTES)"
    )


async def read_body(request: Request, limit: int, metrics: Metrics) -> bytes:
    """The body, refusing (413) as soon as it is known to exceed ``limit``.

    Content-Length is checked first; a chunked or lying body is counted as it
    streams in, so no more than ``limit`` bytes are ever buffered.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise rejected(
                metrics,
                "bad_request",
                HTTPException(status.HTTP_400_BAD_REQUEST, "invalid Content-Length"),
            )
        if int(declared) > limit:
            raise rejected(metrics, "too_large", _too_large(limit))
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise rejected(metrics, "too_large", _too_large(limit))
            chunks.append(chunk)
    except ClientDisconnect:
        # The sender went away mid-body; nothing was stored, nobody to answer.
        raise rejected(
            metrics,
            "bad_request",
            HTTPException(status.HTTP_400_BAD_REQUEST, "client disconnected"),
        ) from None
    return b"".join(chunks)


def _error(err: dict[str, Any], prefix: tuple[Any, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": err["type"],
        "loc": ["body", *prefix, *err["loc"]],
        "msg": err["msg"],
    }
    value = err.get("input")
    if isinstance(value, str):
        out["input"] = value[:200]
    elif isinstance(value, int | float | bool) or value is None:
        out["input"] = value
    return out


class InvalidBody(HTTPException):
    """A 422 for a body, with the reason /metrics counts it under."""

    def __init__(self, reason: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(status.HTTP_422_UNPROCESSABLE_CONTENT, errors)
        self.reason = reason


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
                errors.append(_error(err, prefix_of(index)))
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        raise InvalidBody("invalid_record", errors[:MAX_ERRORS])
    return list(zip(records, items, strict=True))


# What the write endpoints (POST /logs, POST /alerts) answer besides 200,
# each adding its own 422.
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid Content-Length, or the sender went away mid-body"},
    401: {"description": "LOGGER_TOKEN is set and the bearer token is missing or wrong"},
    413: {"description": "Body larger than LOGGER_MAX_BODY_BYTES"},
    415: {"description": "The body is not declared `Content-Type: application/json`"},
    503: {
        "description": "The database cannot be written (disk full, read-only): retry later",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
}


def _ingest(
    db: Database, body: bytes, parse: Callable[[bytes], list[Any]]
) -> tuple[int, list[dict[str, Any]]]:
    records = parse(body)
    return len(records), db.insert(records)


async def store_body(
    request: Request,
    settings: Settings,
    db: Database,
    broadcaster: Broadcaster,
    metrics: Metrics,
    parse: Callable[[bytes], list[Any]],
) -> tuple[int, list[dict[str, Any]]]:
    """Reads a write's body, turns it into records with `parse` and stores
    them, all or none, off the event loop; returns only once they are durably
    committed, as (records received, records newly stored), after showing the
    newest to the live page. A body `parse` rejects is its 4xx; a database
    that cannot be written is a 503 with Retry-After, nothing of the batch
    stored, so the sender keeps it and retries."""
    body = await read_body(request, settings.max_body_bytes, metrics)
    try:
        received, stored = await run_in_threadpool(_ingest, db, body, parse)
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
    if stored and broadcaster.subscribers:
        newest = sorted(stored, key=lambda r: r["time"], reverse=True)[:LIVE_BATCH]
        broadcaster.publish(sse("records", {"records": newest, "counters": db.counters.as_dict()}))
    return received, stored


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


@router.get("", response_model=LogPage, response_model_exclude_unset=True)
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


@router.get("/hosts", response_model=HostsPage)
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
    responses={200: {"content": {"application/x-ndjson": {}}}},
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
