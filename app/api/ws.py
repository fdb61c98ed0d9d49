"""WebSocket endpoint of a session: `GET /v1/sessions/{sid}/ws` (API.md).

One socket follows at most one reply at a time: a new `message` or `resume` replaces the stream
being forwarded. Errors about a frame answer with an `error` frame whose `status` is 4000 + the
HTTP status of the same error over HTTP (4409 reply in flight, 4400 bad frame, ...), and the
socket stays open. Leaving the socket is leaving the reply: it then goes on for the orphan
grace period, so a client that reconnects can `resume`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.api.errors import status_of
from app.chat import ChatService
from app.errors import InvalidRequest, SessionNotFound, StreamchatError
from app.streams import Event

log = logging.getLogger("streamchat.ws")

CLOSE_NORMAL, CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_INTERNAL = 1000, 1008, 1009, 1011
CLOSE_UNKNOWN_SESSION = 4404


class SessionSocket:
    def __init__(self, websocket: WebSocket, chat: ChatService, session_id: str,
                 owner: str | None, max_frame_bytes: int) -> None:
        self.websocket = websocket
        self.chat = chat
        self.session_id = session_id
        self.owner = owner
        self.max_frame_bytes = max_frame_bytes
        self._send_lock = asyncio.Lock()
        self._forwarder: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                raw = text.encode() if text is not None else message.get("bytes") or b""
                if len(raw) > self.max_frame_bytes:
                    await self.websocket.close(CLOSE_TOO_BIG, "frame too big")
                    return
                await self._handle(raw)
        except WebSocketDisconnect:
            return
        finally:
            await self._stop_forwarding()

    async def _handle(self, raw: bytes) -> None:
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            await self._error(InvalidRequest("frame is not valid JSON", code="bad_frame"))
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self._error(InvalidRequest("frame must be a JSON object with a string 'type'",
                                             code="bad_frame"))
            return
        handler = self._handlers.get(frame["type"])
        if handler is None:
            await self._error(InvalidRequest(
                f"unknown frame type {frame['type']!r}; expected one of: "
                f"{', '.join(self._handlers)}", code="unknown_type", param="type"))
            return
        try:
            await handler(self, frame)
        except StreamchatError as exc:
            await self._error(exc)

    async def _on_message(self, frame: dict[str, Any]) -> None:
        _only(frame, {"type", "content", "params"})
        if "content" not in frame:
            raise InvalidRequest("'content' is required", param="content")
        live = await self.chat.post_message(self.session_id, frame["content"], frame.get("params"),
                                            owner=self.owner, transport="ws")
        await self._forward(live.message.id, live.log.follow(-1))

    async def _on_cancel(self, frame: dict[str, Any]) -> None:
        _only(frame, {"type", "message_id"})
        message_id = frame.get("message_id") or await self.chat.reply_in_flight(self.session_id)
        if message_id is None:
            raise InvalidRequest("no reply is in flight to cancel", code="nothing_to_cancel")
        if not isinstance(message_id, str):
            raise InvalidRequest("'message_id' must be a string", param="message_id")
        await self.chat.cancel_message(self.session_id, message_id, self.owner)

    async def _on_resume(self, frame: dict[str, Any]) -> None:
        _only(frame, {"type", "message_id", "after"})
        message_id, after = frame.get("message_id"), frame.get("after", -1)
        if not isinstance(message_id, str):
            raise InvalidRequest("'message_id' must be a string", param="message_id")
        if isinstance(after, bool) or not isinstance(after, int) or after < -1:
            raise InvalidRequest("'after' must be an integer >= -1 (the last seq received)",
                                 param="after")
        events = await self.chat.follow_reply(self.session_id, message_id, after, owner=self.owner)
        await self._forward(message_id, events)

    async def _on_ping(self, frame: dict[str, Any]) -> None:
        await self._send(b'{"type":"pong"}')

    _handlers = {"message": _on_message, "cancel": _on_cancel, "resume": _on_resume,
                 "ping": _on_ping}

    async def _forward(self, message_id: str, events: AsyncIterator[Event | None]) -> None:
        await self._stop_forwarding()
        self._forwarder = asyncio.create_task(self._pump(message_id, events))

    async def _pump(self, message_id: str, events: AsyncIterator[Event | None]) -> None:
        async with contextlib.aclosing(events):  # type: ignore[type-var]
            try:
                async for event in events:
                    if event is not None:
                        await self._send(event.ws_frame(message_id))
            except (WebSocketDisconnect, OSError, RuntimeError):
                return  # the socket closed under us; the receive loop ends too

    async def _stop_forwarding(self) -> None:
        if self._forwarder is not None:
            self._forwarder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._forwarder
            self._forwarder = None

    async def _send(self, data: bytes) -> None:
        async with self._send_lock:
            await self.websocket.send_text(data.decode())

    async def _error(self, exc: StreamchatError) -> None:
        await self._send(orjson.dumps({"type": "error", "code": exc.code, "message": exc.message,
                                       "status": 4000 + status_of(exc), "param": exc.param}))


def _only(frame: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(frame) - allowed)
    if unknown:
        raise InvalidRequest(f"unknown field(s) in {frame['type']!r} frame: {', '.join(unknown)}",
                             param=unknown[0])


async def session_socket(websocket: WebSocket) -> None:
    chat: ChatService = websocket.app.state.chat
    session_id = websocket.path_params["sid"]
    owner = getattr(websocket.state, "owner", None)
    await websocket.accept()
    try:
        await chat.get_session(session_id, owner)
    except SessionNotFound:
        await websocket.close(CLOSE_UNKNOWN_SESSION, "unknown session")
        return
    settings = websocket.app.state.settings
    try:
        await SessionSocket(websocket, chat, session_id, owner, settings.max_body_bytes).run()
    except Exception:
        log.exception("session socket %s failed", session_id)
        with contextlib.suppress(Exception):
            await websocket.close(CLOSE_INTERNAL, "internal error")


routes = [WebSocketRoute("/v1/sessions/{sid}/ws", session_socket)]
