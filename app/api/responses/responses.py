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
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.http import sse
from app.api.http.body import parse_body, validation_context
from app.api.http.disconnect import CLIENT_CLOSED, unless_disconnected
from app.api.http.errors import json_response
from app.api.http.query import flag, integer, last_event_id
from app.api.http.state import Services, fair_user, owner, services
from app.api.openai.format import Shape, chunks
from app.api.openai.reasoning import reasoning_of
from app.api.openai.tool_parser import auto_reader
from app.api.responses.events import ResponseBuilder, new_response_id, response_error
from app.api.responses.frames import frames, logged_frames
from app.api.responses.schemas import ResponsesRequest, renamed
from app.completions import Caller
from app.errors import InvalidRequest, NotFound
from app.records import Record
from app.responses.run import ResponseRun, whole
from app.responses.stored import FINAL, KIND, history, repaired, stored


async def create(request: Request) -> Response:
    accepted_at, svc = time.monotonic(), services(request)
    context = validation_context(svc.settings)
    req = await parse_body(request, ResponsesRequest, svc.settings.max_body_bytes,
                           context=context)
    model = svc.models.resolve(req.model)
    before = await history(svc.records, req.previous_response_id, owner(request))
    chat = req.chat(before, context)
    response_id = new_response_id()
    caller = Caller(response_id, accepted_at, owner(request), fair_user(request, req.user))
    try:
        params = replace(chat.generation_params(), lora=svc.models.lora(model))
        completion = await svc.completions.chat(chat.turns(), params, chat.requested_max_tokens,
                                                caller, tools=chat.template_tools())
    except InvalidRequest as exc:  # what the engine's checks found, by this API's names
        raise renamed(exc) from None
    assert chat.tool_choice is not None  # resolved when validated
    builder = ResponseBuilder(response_id, req, model, chat.tool_choice)
    run = ResponseRun(builder, svc.records, owner=owner(request), store=req.store,
                      background=req.background,
                      conversation=[*before, *req.new_messages()])
    shape = Shape(response_id, int(time.time()), model, True, False, 0,
                                tools=chat.tool_calls(lambda: auto_reader(svc, chat, model)),
                                reasoning=reasoning_of(svc, completion))
    events = run.events(chunks(completion, shape, include_usage=True))
    if req.background:
        return await _background(request, svc, run, events, completion.release, req.stream)
    if req.stream:
        return sse.EventStreamResponse(frames(events), on_close=completion.release,
                                       ping_s=sse.PING_INTERVAL_S)
    try:
        finished, _ = await unless_disconnected(request.receive, whole(events))
    finally:
        await completion.release()
    return json_response(builder.snapshot()) if finished else Response(status_code=CLIENT_CLOSED)


async def _background(request: Request, svc: Services, run: ResponseRun, events: Any,
                      release: Any, stream: bool) -> Response:
    """Start it detached, stored as queued first: a GET right after the POST finds it."""
    await run.save()
    queued = run.builder.snapshot()
    try:
        log = await svc.detached.start(queued["id"], owner(request), events, release,
                                       background=True)
    except BaseException:  # never started: its place in the queue goes back
        await release()
        raise
    if stream:
        return sse.EventStreamResponse(logged_frames(log.follow(0, sse.PING_INTERVAL_S)))
    return json_response(queued)


async def retrieve(request: Request) -> Response:
    svc, response_id = services(request), request.path_params["response_id"]
    stream, after = flag(request, "stream"), _starting_after(request)
    record = await _current(svc, await stored(svc.records, response_id, owner(request)))
    if not stream:
        return json_response(record["response"])
    if not record["response"].get("background"):
        raise InvalidRequest("only a background response can be streamed again",
                             param="stream")
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
    if not record["response"].get("background"):
        raise InvalidRequest("only a background response can be cancelled",
                             param="response_id")
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
