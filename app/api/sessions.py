"""HTTP routes of the sessions API (API.md): sessions, messages, SSE reply streams."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.errors import json_response
from app.api.schemas import accepts_event_stream, read_json_object
from app.api.sse import PING, PING_INTERVAL_S, EventStreamResponse, parse_last_event_id
from app.chat import ChatService
from app.errors import InvalidRequest
from app.streams import Event


def _chat(request: Request) -> ChatService:
    return request.app.state.chat  # type: ignore[no-any-return]


def _owner(request: Request) -> str | None:
    return getattr(request.state, "owner", None)


def _max_body(request: Request) -> int:
    return int(request.app.state.settings.max_body_bytes)


async def create_session(request: Request) -> Response:
    body = await read_json_object(request, _max_body(request), optional=True)
    unknown = sorted(set(body) - {"system", "params", "title"})
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}", param=unknown[0])
    session = await _chat(request).create_session(
        system=body.get("system"), params=body.get("params"), title=body.get("title"),
        owner=_owner(request))
    return json_response(session.to_dict(), 201,
                         headers={"Location": f"/v1/sessions/{session.id}"})


async def list_sessions(request: Request) -> Response:
    sessions = await _chat(request).list_sessions(_owner(request))
    return json_response({"data": sessions})


async def get_session(request: Request) -> Response:
    session = await _chat(request).get_session(request.path_params["sid"], _owner(request))
    return json_response(session.to_dict())


async def delete_session(request: Request) -> Response:
    await _chat(request).delete_session(request.path_params["sid"], _owner(request))
    return Response(status_code=204)


async def post_message(request: Request) -> Response:
    sid = request.path_params["sid"]
    body = await read_json_object(request, _max_body(request))
    unknown = sorted(set(body) - {"content", "params"})
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}", param=unknown[0])
    if "content" not in body:
        raise InvalidRequest("'content' is required", param="content")
    live = await _chat(request).post_message(sid, body["content"], body.get("params"),
                                              owner=_owner(request), transport="sse")
    if accepts_event_stream(request):
        return EventStreamResponse(_frames(live.log.follow(-1, PING_INTERVAL_S)))
    base = f"/v1/sessions/{sid}/messages/{live.message.id}"
    return json_response(
        {"message_id": live.message.id, "status": "queued", "stream_url": base + "/stream",
         "status_url": base}, 202, headers={"Location": base})


async def get_message(request: Request) -> Response:
    message = await _chat(request).get_message(
        request.path_params["sid"], request.path_params["mid"], _owner(request))
    return json_response(message.to_dict())


async def stream_message(request: Request) -> Response:
    after = parse_last_event_id(request.headers.get("last-event-id"),
                                request.query_params.get("last_event_id"))
    events = await _chat(request).follow_reply(
        request.path_params["sid"], request.path_params["mid"], after,
        heartbeat_s=PING_INTERVAL_S, owner=_owner(request))
    return EventStreamResponse(_frames(events))


async def cancel_message(request: Request) -> Response:
    message = await _chat(request).cancel_message(
        request.path_params["sid"], request.path_params["mid"], _owner(request))
    return json_response(message.to_dict())


async def _frames(events: AsyncIterator[Event | None]) -> AsyncIterator[bytes]:
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for event in events:
            yield PING if event is None else event.sse_frame()


routes = [
    Route("/v1/sessions", create_session, methods=["POST"]),
    Route("/v1/sessions", list_sessions, methods=["GET"]),
    Route("/v1/sessions/{sid}", get_session, methods=["GET"]),
    Route("/v1/sessions/{sid}", delete_session, methods=["DELETE"]),
    Route("/v1/sessions/{sid}/messages", post_message, methods=["POST"]),
    Route("/v1/sessions/{sid}/messages/{mid}", get_message, methods=["GET"]),
    Route("/v1/sessions/{sid}/messages/{mid}/stream", stream_message, methods=["GET"]),
    Route("/v1/sessions/{sid}/messages/{mid}/cancel", cancel_message, methods=["POST"]),
]
