"""Resumable OpenAI chat completion streams (opt-in with `X-Stream-Resumable: true`): the
response follows the completion's detached log (app/replies/detached.py) instead of the
completion itself, so a client that leaves does not abort it, and `GET
/v1/chat/completions/streams/{stream_id}` with `Last-Event-ID` resumes it on any replica."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.http import sse
from app.api.http.query import last_event_id
from app.api.http.state import owner, services
from app.api.openai.format import Shape, chunks
from app.api.openai.schemas import ChatCompletionRequest
from app.completions import Completion
from app.errors import InvalidRequest

HEADER = "X-Stream-Resumable"
STREAM_ID = "X-Stream-ID"


def asked(request: Request) -> bool:
    """Whether the request opts in; a value other than true or false is a 400."""
    value = request.headers.get(HEADER)
    if value is None or value.strip().lower() == "false":
        return False
    if value.strip().lower() == "true":
        return True
    raise InvalidRequest(f"{HEADER} must be true or false, not {value!r}", param=HEADER)


async def stream(request: Request, req: ChatCompletionRequest, completion: Completion,
                 shape: Shape) -> Response:
    """Start the completion detached, under its id, and follow it from its start."""
    try:
        log = await services(request).detached.start(
            shape.id, owner(request), chunks(completion, shape, req.include_usage),
            completion.release)
    except BaseException:  # never started (the store failed): its place and count go back
        await completion.release()
        raise
    return sse.EventStreamResponse(sse.chunk_frames(log.follow(-1, sse.PING_INTERVAL_S)),
                                   headers={STREAM_ID: shape.id})


async def resume(request: Request) -> Response:
    stream_id = request.path_params["stream_id"]
    events = await services(request).detached.follow(
        stream_id, last_event_id(request), heartbeat_s=sse.PING_INTERVAL_S, owner=owner(request))
    return sse.EventStreamResponse(sse.chunk_frames(events), headers={STREAM_ID: stream_id})


routes = [Route("/v1/chat/completions/streams/{stream_id}", resume, methods=["GET"])]
