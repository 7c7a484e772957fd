"""The write path the two write endpoints share (POST /logs, POST /alerts).

Both take a JSON body with the service's bearer token, read it within
LOGGER_MAX_BODY_BYTES, turn it into records with their own parser (a 422
naming the bad field, shaped by ``body_error``) and store them all or none
off the event loop (``store_body``): what differs between them is only the
parser and what they count.
"""

from __future__ import annotations

import hmac
import sqlite3
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from .config import Settings
from .db import Database, StorageError
from .deps import get_metrics, get_settings
from .events import Broadcaster, sse
from .metrics import Metrics

MAX_ERRORS = 20
LIVE_BATCH = 100
RETRY_AFTER_SECONDS = 5


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


def body_error(err: dict[str, Any], prefix: tuple[Any, ...]) -> dict[str, Any]:
    """One pydantic error as an entry of a 422's detail: located under ``body``
    (after ``prefix``, e.g. the record's index), its input cut to 200 characters."""
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
    except (sqlite3.Error, StorageError) as exc:
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
