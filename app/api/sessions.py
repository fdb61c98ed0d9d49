"""HTTP routes of the sessions API (API.md): sessions, messages, SSE reply streams."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.errors import json_response
from app.api.schemas import accepts_event_stream, read_json_object
from app.api.sse import PING, PING_INTERVAL_S, EventStreamResponse, parse_last_event_id
from app.chat import ChatService
from app.errors import InvalidRequest
from app.sessions.models import FINAL_STATUSES, Message
from app.streams import Event, ReplyLog


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
    return json_response({"data": [s.summary() for s in sessions]})


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
        return EventStreamResponse(_log_frames(live.log, -1))
    base = f"/v1/sessions/{sid}/messages/{live.message.id}"
    return json_response(
        {"message_id": live.message.id, "status": "queued", "stream_url": base + "/stream",
         "status_url": base}, 202, headers={"Location": base})


async def get_message(request: Request) -> Response:
    message = await _chat(request).get_message(
        request.path_params["sid"], request.path_params["mid"], _owner(request))
    return json_response(message.to_dict())


async def stream_message(request: Request) -> Response:
    sid, mid = request.path_params["sid"], request.path_params["mid"]
    chat = _chat(request)
    message = await chat.get_message(sid, mid, _owner(request))
    after = parse_last_event_id(request.headers.get("last-event-id"),
                                request.query_params.get("last_event_id"))
    log = chat.reply_log(mid)
    if log is not None:
        return EventStreamResponse(_log_frames(log, after))
    if message.role != "assistant":
        raise InvalidRequest(f"message {mid} is a user turn; only replies have streams",
                             param="message_id")
    return EventStreamResponse(_replayed_frames(message, sid, chat.engine.model_name, after))


async def cancel_message(request: Request) -> Response:
    message = await _chat(request).cancel_message(
        request.path_params["sid"], request.path_params["mid"], _owner(request))
    return json_response(message.to_dict())


async def _log_frames(log: ReplyLog, after: int) -> AsyncIterator[bytes]:
    async for event in log.follow(after, heartbeat_s=PING_INTERVAL_S):
        yield PING if event is None else event.sse_frame()


async def _replayed_frames(message: Message, session_id: str, model: str,
                           after: int) -> AsyncIterator[bytes]:
    """A finished reply whose event log has expired, rebuilt from the stored message."""
    for event in replay_events(message, session_id, model):
        if event.seq > after:
            yield event.sse_frame()


def replay_events(message: Message, session_id: str, model: str) -> list[Event]:
    events: list[tuple[str, dict[str, object]]] = [
        ("start", {"message_id": message.id, "session_id": session_id, "model": model})]
    usage = message.usage or {}
    if message.content:
        events.append(("token", {"text": message.content,
                                 "n": usage.get("completion_tokens", 0)}))
    if message.status == "error":
        events.append(("error", {"code": "engine_error", "message": "the reply failed"}))
    elif message.status in FINAL_STATUSES:
        events.append(("done", {"finish_reason": message.finish_reason or message.status,
                                "usage": usage, "timings": message.timings or {}}))
    return [Event(i, kind, data, orjson.dumps(data)) for i, (kind, data) in enumerate(events)]


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
