"""GET /metrics: the service's own metrics in Prometheus' text format."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..deps import MetricsDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, include_in_schema=False)
def metrics(registry: MetricsDep) -> Response:
    """Prometheus text exposition (scraped by the stack's Prometheus, job `logger`)."""
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
