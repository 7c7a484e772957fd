"""POST /logs (ingest), GET /logs (query) and GET /logs/export (JSON Lines)."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import TypeAdapter, ValidationError
from pydantic_core import from_json
from starlette.requests import ClientDisconnect

from ..config import Settings
from ..db import Database, Filters
from ..deps import BroadcasterDep, DbDep, SettingsDep, get_settings, invalid, parse_time
from ..events import sse
from ..models import ContainerType, Event, IngestResult, LogPage, LogRecordIn

router = APIRouter(prefix="/logs", tags=["logs"])

MAX_ERRORS = 20
LIVE_BATCH = 100
_BATCH = TypeAdapter(list[LogRecordIn])


def require_token(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    """401 unless ``Authorization: Bearer <LOGGER_TOKEN>`` (when a token is set)."""
    if not settings.token_required:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    expected = settings.token or ""
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _too_large(limit: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE, f"body larger than {limit} bytes (LOGGER_MAX_BODY_BYTES)"
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) as soon as it is known to exceed ``limit``.

    Content-Length is checked first; a chunked or lying body is counted as it
    streams in, so no more than ``limit`` bytes are ever buffered.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "invalid Content-Length")
        if int(declared) > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        # The sender went away mid-body; nothing was stored, nobody to answer.
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "client disconnected") from None
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


def parse_records(body: bytes) -> list[tuple[LogRecordIn, dict[str, Any]]]:
    """Validated records with the JSON objects they came from (kept whole)."""
    if not body.strip():
        raise invalid("body", "body", "empty body: expected a record or an array of records")
    try:
        data = from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"type": "json_invalid", "loc": ["body"], "msg": f"invalid JSON: {exc}"}],
        ) from None
    if isinstance(data, dict):
        items, prefix_of = [data], (lambda _i: ())
    elif isinstance(data, list):
        items, prefix_of = data, (lambda i: (i,))
    else:
        raise invalid("body", "body", "expected a record (object) or an array of records")
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
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, errors[:MAX_ERRORS])
    return list(zip(records, items, strict=True))


def _ingest(db: Database, body: bytes) -> tuple[int, list[dict[str, Any]]]:
    records = parse_records(body)
    return len(records), db.insert(records)


@router.post(
    "",
    response_model=IngestResult,
    dependencies=[Depends(require_token)],
    responses={
        401: {"description": "LOGGER_TOKEN is set and the bearer token is missing or wrong"},
        413: {"description": "Body larger than LOGGER_MAX_BODY_BYTES"},
        422: {"description": "Invalid JSON or record; `loc` names the bad field"},
    },
)
async def post_logs(
    request: Request, settings: SettingsDep, db: DbDep, broadcaster: BroadcasterDep
) -> IngestResult:
    """Stores one record or a JSON array of records; idempotent on `id`.

    The response comes after the records are durably committed. Records whose
    id is already stored (a retried batch) count as duplicates and change nothing.
    """
    body = await read_body(request, settings.max_body_bytes)
    received, stored = await run_in_threadpool(_ingest, db, body)
    if stored and broadcaster.subscribers:
        newest = sorted(stored, key=lambda r: r["time"], reverse=True)[:LIVE_BATCH]
        broadcaster.publish(sse("records", {"records": newest, "counters": db.counters.as_dict()}))
    return IngestResult(received=received, stored=len(stored), duplicates=received - len(stored))


def _cursor_encode(time_ms: int, record_id: str) -> str:
    raw = json.dumps([time_ms, record_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_decode(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        time_ms, record_id = json.loads(raw)
        if not isinstance(time_ms, int) or isinstance(time_ms, bool):
            raise ValueError("time")
        if not isinstance(record_id, str):
            raise ValueError("id")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise invalid("query", "cursor", "not a cursor returned by GET /logs", cursor) from None
    return time_ms, record_id


def filters(
    container: Annotated[
        str | None, Query(max_length=255, description="Container name, id or id prefix")
    ] = None,
    type: Annotated[list[ContainerType] | None, Query(description="Container type")] = None,  # noqa: A002
    event: Annotated[list[Event] | None, Query(description="Event")] = None,
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
