"""OpenAI's Responses API: `POST /v1/responses` (whole, streamed with typed events, or in the
background), `GET /v1/responses/{id}` (the response, or with `stream=true&starting_after=N` its
events again, on any replica), `POST /v1/responses/{id}/cancel` and `DELETE`.

A response is a chat completion underneath (app/api/responses/schemas.py): the same engine
path, admission, limits, tools and structured output. A background response runs detached
(app/replies/detached.py) with its events in a reply log, memory or Redis Streams, which is what
lets any replica resume it; OpenAI's own protocol for resumable streams, where vLLM's server
keeps such state in one process's memory."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.http import sse
from app.api.http.body import parse_body, validation_context
from app.api.http.disconnect import CLIENT_CLOSED, unless_disconnected
from app.api.http.errors import json_response
from app.api.http.query import flag, integer, last_event_id
from app.api.http.state import Services, fair_user, owner, services
from app.api.responses.events import response_error
from app.api.responses.frames import frames, logged_frames
from app.api.responses.schemas import ResponsesRequest
from app.api.responses.start import detach, start
from app.errors import InvalidRequest, NotFound
from app.records import Record
from app.responses.run import whole
from app.responses.stored import FINAL, KIND, repaired, resumable, stored


async def create(request: Request) -> Response:
    accepted_at, svc = time.monotonic(), services(request)
    context = validation_context(svc.settings)
    req = await parse_body(request, ResponsesRequest, svc.settings.max_body_bytes,
                           context=context)
    started = await start(svc, req, context, owner=owner(request),
                          user=fair_user(request, req.user), accepted_at=accepted_at)
    if req.background:
        queued = started.builder.snapshot()
        log = await detach(svc, started, owner(request))
        if req.stream:
            return sse.EventStreamResponse(logged_frames(log.follow(0, sse.PING_INTERVAL_S)))
        return json_response(queued)
    if req.stream:
        return sse.EventStreamResponse(frames(started.events), on_close=started.release,
                                       ping_s=sse.PING_INTERVAL_S)
    try:
        finished, _ = await unless_disconnected(request.receive, whole(started.events))
    finally:
        await started.release()
    return json_response(started.builder.snapshot()) if finished else \
        Response(status_code=CLIENT_CLOSED)


async def retrieve(request: Request) -> Response:
    svc, response_id = services(request), request.path_params["response_id"]
    stream, after = flag(request, "stream"), _starting_after(request)
    record = await _current(svc, await stored(svc.records, response_id, owner(request)))
    if not stream:
        return json_response(record["response"])
    if not resumable(record):
        raise InvalidRequest("only a background response, or one started over the WebSocket, "
                             "can be streamed again", param="stream")
    # The log numbers its own `start` 0: sequence number N is the log's N + 1.
    try:
        events = await svc.detached.follow(response_id, after + 1,
                                           heartbeat_s=sse.PING_INTERVAL_S, owner=owner(request))
    except NotFound:
        raise NotFound(f"the events of response {response_id} are no longer kept (10 minutes "
                       "after it ended); GET it without stream", param="response_id",
                       code="response_events_expired") from None
    return sse.EventStreamResponse(logged_frames(events))


async def cancel(request: Request) -> Response:
    svc, response_id = services(request), request.path_params["response_id"]
    record = await stored(svc.records, response_id, owner(request))
    if not resumable(record):
        raise InvalidRequest("only a background response, or one started over the WebSocket, "
                             "can be cancelled", param="response_id")
    if record["response"]["status"] not in FINAL:
        await svc.detached.cancel(response_id)
        record = await stored(svc.records, response_id, owner(request))
    return json_response((await _current(svc, record))["response"])


async def delete(request: Request) -> Response:
    svc, response_id = services(request), request.path_params["response_id"]
    record = await stored(svc.records, response_id, owner(request))
    if record["response"]["status"] not in FINAL:
        await svc.detached.cancel(response_id)
    await svc.records.delete(KIND, response_id)
    svc.detached.forget(response_id)
    return json_response({"id": response_id, "object": "response", "deleted": True})


async def _current(svc: Services, record: Record) -> Record:
    """The record as it stands: failed (`interrupted`) if its replica died mid-run."""
    return await repaired(svc.records, record, svc.detached.running, response_error(
        "interrupted", "the replica running this response stopped"))


def _starting_after(request: Request) -> int:
    """`starting_after` (OpenAI's), or `Last-Event-ID` (an EventSource's); -1: from the start."""
    after = integer(request, "starting_after", low=-1,
                    what="a sequence number (an integer from -1)")
    return last_event_id(request, query=None) if after is None else after


routes = [
    Route("/v1/responses", create, methods=["POST"]),
    Route("/v1/responses/{response_id}", retrieve, methods=["GET"]),
    Route("/v1/responses/{response_id}", delete, methods=["DELETE"]),
    Route("/v1/responses/{response_id}/cancel", cancel, methods=["POST"]),
]
