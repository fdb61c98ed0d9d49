"""Operations endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import metrics
from app.api.errors import error_body, json_response


async def health(request: Request) -> Response:
    return json_response({"status": "ok"})


async def ready(request: Request) -> Response:
    state = request.app.state
    if state.draining:
        reason = "draining"
    elif state.engine_failed:
        reason = "engine failed to start"
    elif not state.engine.ready:
        reason = "engine loading"
    else:
        return json_response({"status": "ready", "model": state.engine.model_name})
    return json_response(error_body(f"not ready: {reason}", "unavailable_error", "not_ready"),
                         503, headers={"Retry-After": "5"})


async def prometheus(request: Request) -> Response:
    stats = request.app.state.engine.stats()
    metrics.ENGINE_RUNNING.set(stats.running)
    metrics.ENGINE_WAITING.set(stats.waiting)
    metrics.ENGINE_KV_CACHE_USAGE.set(stats.kv_cache_usage)
    # Read at scrape time: the store evicts and expires sessions on its own.
    metrics.SESSIONS.set(await request.app.state.chat.session_count())
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
    Route("/metrics", prometheus, methods=["GET"]),
]
