"""PNG graphs: /graphs/memory.png, /graphs/cpu.png, /graphs/kills.png."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status

from ..deps import (
    READ_AUTH_RESPONSES,
    DbDep,
    MetricsDep,
    ReadAuth,
    RendererDep,
    SettingsDep,
    invalid,
    now_ms,
    parse_range,
    parse_time,
)
from ..models import MAX_MS, MIN_MS, TIME_RANGE_TEXT
from ..render import BusyError
from ..windows import GraphRequest, align, max_buckets

router = APIRouter(
    prefix="/graphs", tags=["graphs"], dependencies=[ReadAuth], responses=READ_AUTH_RESPONSES
)

KINDS = ("memory", "cpu", "kills")
HOUR_MS = 3_600_000
MIN_ALL_MS = 600_000  # `range=all` shows at least 10 minutes


@router.get(
    "/{kind}.png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The graph"},
        404: {"description": "No such graph"},
        503: {
            "description": "Every render slot is busy: try again after `Retry-After` seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        },
    },
)
async def graph(
    kind: str,
    db: DbDep,
    settings: SettingsDep,
    renderer: RendererDep,
    metrics: MetricsDep,
    range: Annotated[  # noqa: A002
        str | None,
        Query(description="`all` or a duration ending at `until` (or now): 15m, 6h, 7d"),
    ] = None,
    since: Annotated[str | None, Query(description="RFC 3339 time or Unix seconds")] = None,
    until: Annotated[str | None, Query(description="RFC 3339 time or Unix seconds")] = None,
    width: Annotated[int, Query(ge=320, le=2400, description="Pixels")] = 800,
    height: Annotated[int, Query(ge=200, le=1600, description="Pixels")] = 360,
    host: Annotated[
        str | None,
        Query(max_length=255, description="Only this host's records (a fleet node); all if unset"),
    ] = None,
) -> Response:
    """Memory or CPU per container type over time, or kills per type (time-bucketed);
    dashed vertical lines mark where a gestor run started. The window is widened
    to whole buckets, so requests a few seconds apart share one rendered PNG."""
    if kind not in KINDS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no graph {kind!r}; try {KINDS}")
    since_ms = parse_time("since", since)
    until_ms = parse_time("until", until)
    span = parse_range(range if range is not None else settings.default_range)
    if span is None:
        first, last = db.time_bounds()
        if first is None or last is None:
            last = now_ms()
            first = last - HOUR_MS
        until_ms = until_ms if until_ms is not None else last
        since_ms = since_ms if since_ms is not None else min(first, until_ms - MIN_ALL_MS)
    else:
        if until_ms is None:
            until_ms = since_ms + span if since_ms is not None and range else now_ms()
            if until_ms > MAX_MS:  # `since` plus `range` went past the time range
                raise invalid(
                    "query", "range", f"the window must lie within {TIME_RANGE_TEXT}", range
                )
        if since_ms is None:
            since_ms = until_ms - span
    if since_ms >= until_ms:
        raise invalid("query", "since", "`since` must be before `until`", since)
    if since_ms < MIN_MS:  # `until` minus `range` went before 1970
        raise invalid("query", "range", f"the window must lie within {TIME_RANGE_TEXT}", range)
    window, bucket = align(since_ms, until_ms, max_buckets(kind, width))
    request = GraphRequest(
        kind, window.since_ms, window.until_ms, bucket, width, height, host or None
    )
    try:
        rendered = await renderer.render(request, db.generation)
    except BusyError as busy:
        metrics.graph_requests.labels(kind, "busy").inc()
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "every graph render slot is busy; try again shortly",
            headers={"Retry-After": str(busy.retry_after)},
        ) from None
    metrics.graph_requests.labels(kind, rendered.result).inc()
    return Response(rendered.png, media_type="image/png", headers={"Cache-Control": "no-store"})
