"""Routes of the operations endpoints: /healthz, /readyz, /metrics (no authentication)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import State
from api.ops import service
from api.ops.schemas import Health, Readiness

router = APIRouter(tags=["ops"])

_READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"model": Readiness, "description": "A dependency is unreachable"}}
_METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus exposition"}}


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """The process is up and answering."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses=_READY_RESPONSES, summary="Readiness")
async def readyz(state: State) -> JSONResponse:
    """200 when the database and the broker are reachable, 503 otherwise."""
    db = await service.check_database(state.pool)
    broker = await service.check_broker(state.settings.mqtt_url)
    ok = db.ok and broker.ok
    body = Readiness(status="ready" if ok else "not_ready", database=db, broker=broker)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/metrics", response_class=Response, responses=_METRICS_RESPONSES, summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    """Request counts and latency histograms by route template, in the Prometheus text format."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
