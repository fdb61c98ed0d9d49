"""Operations endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import contextlib

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import gpu_metrics, metrics
from app.api.http.errors import error_response, json_response
from app.api.http.state import services
from app.errors import NotReady, StoreUnavailable
from app.lifecycle import RETRY_AFTER_S


class Health(BaseModel):
    status: str  # "ok"


class Ready(BaseModel):
    status: str  # "ready"
    model: str  # the served model's name


async def health(request: Request) -> Response:
    """`/health`, and `/v1/health` (the seed's path). 200 while the process can serve (an
    engine restarting in place included); 503 once it cannot: its engine failed to start or
    kept dying, and the process is exiting."""
    failure = services(request).lifecycle.failure
    if failure is None:
        return json_response(Health(status="ok").model_dump())
    return error_response(NotReady(f"unhealthy: {failure}; the process exits",
                                   retry_after_s=RETRY_AFTER_S))


async def ready(request: Request) -> Response:
    svc = services(request)
    reason = svc.lifecycle.ready_reason()
    if reason is None:
        return json_response(Ready(status="ready", model=svc.engine.model_name).model_dump())
    return error_response(NotReady(f"not ready: {reason}", retry_after_s=RETRY_AFTER_S))


async def prometheus(request: Request) -> Response:
    svc = services(request)
    stats = svc.engine.stats()
    metrics.ENGINE_RUNNING.set(stats.running)
    metrics.ENGINE_WAITING.set(stats.waiting)
    metrics.ENGINE_KV_CACHE_USAGE.set(stats.kv_cache_usage)
    # Read at scrape time: the store evicts and expires sessions on its own.
    with contextlib.suppress(StoreUnavailable):  # Redis away: the last count stands
        metrics.SESSIONS.set(await svc.chat.session_count())
    # GPU gauges exist only where NVML sees a device; probed on the first scrape, then cached.
    gpu_metrics.installed()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/v1/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
    Route("/metrics", prometheus, methods=["GET"]),
]
