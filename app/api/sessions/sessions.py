"""HTTP routes of the sessions API (docs/API.md): sessions, messages, SSE reply streams."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.http.body import accepts_event_stream, parse_body, validation_context
from app.api.http.errors import json_response
from app.api.http.query import last_event_id
from app.api.http.sse import PING_INTERVAL_S, EventStreamResponse, event_frames
from app.api.http.state import fair_user, owner, services
from app.api.sessions.schemas import NewMessage, NewSession, SessionPatch

TRANSPORT = "sse"


async def create_session(request: Request) -> Response:
    svc = services(request)
    body = await parse_body(request, NewSession, svc.settings.max_body_bytes, optional=True,
                            context=validation_context(svc.settings))
    session = await svc.chat.create_session(system=body.system, params=body.params,
                                            title=body.title, owner=owner(request),
                                            model=body.model)
    return json_response(session.public(), 201, headers={"Location": f"/v1/sessions/{session.id}"})


async def list_sessions(request: Request) -> Response:
    return json_response({"data": await services(request).chat.list_sessions(owner(request))})


async def get_session(request: Request) -> Response:
    session = await services(request).chat.get_session(request.path_params["sid"], owner(request))
    return json_response(session.public())


async def update_session(request: Request) -> Response:
    svc = services(request)
    body = await parse_body(request, SessionPatch, svc.settings.max_body_bytes, optional=True,
                            context=validation_context(svc.settings))
    session = await svc.chat.update_session(request.path_params["sid"], body.changes(),
                                            owner(request))
    return json_response(session.public())


async def delete_session(request: Request) -> Response:
    await services(request).chat.delete_session(request.path_params["sid"], owner(request))
    return Response(status_code=204)


async def post_message(request: Request) -> Response:
    svc, sid = services(request), request.path_params["sid"]
    body = await parse_body(request, NewMessage, svc.settings.max_body_bytes,
                            context=validation_context(svc.settings))
    live = await svc.chat.post_message(sid, body.content, body.params, owner=owner(request),
                                       transport=TRANSPORT, user=fair_user(request),
                                       replaces=body.replaces)
    if accepts_event_stream(request):
        return EventStreamResponse(event_frames(live.log.follow(-1, PING_INTERVAL_S)))
    base = f"/v1/sessions/{sid}/messages/{live.message.id}"
    return json_response(
        {"message_id": live.message.id, "status": "queued", "stream_url": base + "/stream",
         "status_url": base}, 202, headers={"Location": base})


async def get_message(request: Request) -> Response:
    message = await services(request).chat.get_message(
        request.path_params["sid"], request.path_params["mid"], owner(request))
    return json_response(message.public())


async def stream_message(request: Request) -> Response:
    events = await services(request).chat.follow_reply(
        request.path_params["sid"], request.path_params["mid"], last_event_id(request),
        heartbeat_s=PING_INTERVAL_S, owner=owner(request))
    return EventStreamResponse(event_frames(events))


async def cancel_message(request: Request) -> Response:
    message = await services(request).chat.cancel_message(
        request.path_params["sid"], request.path_params["mid"], owner(request))
    return json_response(message.public())


routes = [
    Route("/v1/sessions", create_session, methods=["POST"]),
    Route("/v1/sessions", list_sessions, methods=["GET"]),
    Route("/v1/sessions/{sid}", get_session, methods=["GET"]),
    Route("/v1/sessions/{sid}", update_session, methods=["PATCH"]),
    Route("/v1/sessions/{sid}", delete_session, methods=["DELETE"]),
    Route("/v1/sessions/{sid}/messages", post_message, methods=["POST"]),
    Route("/v1/sessions/{sid}/messages/{mid}", get_message, methods=["GET"]),
    Route("/v1/sessions/{sid}/messages/{mid}/stream", stream_message, methods=["GET"]),
    Route("/v1/sessions/{sid}/messages/{mid}/cancel", cancel_message, methods=["POST"]),
]
