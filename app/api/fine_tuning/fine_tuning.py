"""OpenAI's fine-tuning jobs API: `POST /v1/fine_tuning/jobs` (and the seed's `POST
/v1/fine-tune`), `GET /v1/fine_tuning/jobs` (cursor pages, newest first), `GET .../{id}`,
`POST .../{id}/cancel` (409 once it has ended), `GET .../{id}/events`: a page of events,
newest first as OpenAI lists them, or with `Accept: text/event-stream` every event oldest
first, live, until the job ends (then `data: [DONE]`); `Last-Event-ID` resumes after an event's
index. Served only with STREAMCHAT_FINE_TUNING=true.

What a job may ask for (the base model, the caller's own files) is app/finetune/eligibility.py's
to check."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.fine_tuning.manager import enabled
from app.api.http import sse
from app.api.http.body import accepts_event_stream, parse_body
from app.api.http.errors import json_response
from app.api.http.query import Page, last_event_id
from app.api.http.state import owner, services
from app.finetune.eligibility import base_model_for
from app.finetune.job import JobRequest
from app.finetune.store import JobStore, page


async def create(request: Request) -> Response:
    manager, svc = enabled(request), services(request)
    req = await parse_body(request, JobRequest, svc.settings.max_body_bytes)
    base = await base_model_for(req, owner(request), svc.models, manager.files)
    return json_response(await manager.create(req, base, owner(request)))


async def list_jobs(request: Request) -> Response:
    manager = enabled(request)
    asked = Page.of(request)
    jobs, has_more = page(await manager.all(owner(request)), asked.after, asked.limit)
    return json_response({"object": "list", "data": jobs, "has_more": has_more})


async def retrieve(request: Request) -> Response:
    manager = enabled(request)
    return json_response(await manager.get(request.path_params["job_id"], owner(request)))


async def cancel(request: Request) -> Response:
    manager = enabled(request)
    return json_response(await manager.cancel(request.path_params["job_id"], owner(request)))


async def events(request: Request) -> Response:
    manager, job_id = enabled(request), request.path_params["job_id"]
    await manager.get(job_id, owner(request))  # 404 unless it is the caller's
    if accepts_event_stream(request):
        after = last_event_id(request, query=None)
        return sse.EventStreamResponse(_frames(manager.store, job_id, after + 1),
                                       ping_s=sse.PING_INTERVAL_S)
    newest_first = list(reversed(await manager.store.events(job_id)))
    asked = Page.of(request)
    chosen, has_more = page(newest_first, asked.after, asked.limit)
    return json_response({"object": "list", "data": chosen, "has_more": has_more})


async def _frames(store: JobStore, job_id: str, start: int) -> AsyncIterator[bytes]:
    async for index, event in store.follow(job_id, start):
        yield sse.frame(orjson.dumps(event), event_id=index)
    yield sse.DONE


routes = [
    Route("/v1/fine_tuning/jobs", create, methods=["POST"]),
    Route("/v1/fine-tune", create, methods=["POST"]),  # the seed document's path
    Route("/v1/fine_tuning/jobs", list_jobs, methods=["GET"]),
    Route("/v1/fine_tuning/jobs/{job_id}", retrieve, methods=["GET"]),
    Route("/v1/fine_tuning/jobs/{job_id}/cancel", cancel, methods=["POST"]),
    Route("/v1/fine_tuning/jobs/{job_id}/events", events, methods=["GET"]),
]
