"""One router per resource, collected here and mounted by ``main.create_app``."""

from fastapi import APIRouter

from . import alerts, graphs, health, live, logs, metrics

api_router = APIRouter()
api_router.include_router(logs.router)
api_router.include_router(alerts.router)
api_router.include_router(graphs.router)
api_router.include_router(health.router)
api_router.include_router(live.router)
api_router.include_router(metrics.router)
