"""WebSocket endpoint of a session: `GET /v1/sessions/{sid}/ws` (docs/API.md).

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

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.api.http.body import validation_context
from app.api.http.errors import count_rejection, error_frame
from app.api.http.state import Services, fair_user, owner, services
from app.api.http.subprotocol import subprotocol
from app.api.http.ws_frames import FrameSender, receive_frame
from app.api.sessions.schemas import (
    CancelFrame,
    ClientFrame,
    MessageFrame,
    PingFrame,
    ResumeFrame,
    parse_frame,
)
from app.chat import ChatService
from app.errors import InvalidRequest, SessionNotFound, StreamchatError
from app.streams import Event
from app.tasks import STOP_BOUND_S, cancel_and_wait

log = logging.getLogger("streamchat.ws")

TRANSPORT = "ws"
CLOSE_INTERNAL, CLOSE_UNKNOWN_SESSION = 1011, 4404
PONG = b'{"type":"pong"}'


def event_frame(event: Event, message_id: str) -> bytes:
    """A reply event as a frame: {"type", "message_id", "seq", ...its data}; progress
    (`queued`, `prefill`) without `seq`, as it is not part of the reply's numbering."""
    head = b'{"type":"%s","message_id":"%s"' % (event.type.encode(), message_id.encode())
    if event.numbered:
        head += b',"seq":%d' % event.seq
    return head + (b"," + event.payload[1:] if len(event.payload) > 2 else b"}")


class SessionSocket:
    def __init__(self, websocket: WebSocket, svc: Services, session_id: str,
                 owner: str | None) -> None:
        self.websocket = websocket
        self.chat: ChatService = svc.chat
        self.limits = svc.limits if owner is not None else None
        self.session_id = session_id
        self.owner = owner
        self.user = fair_user(websocket)
        self.max_frame_bytes = svc.settings.max_body_bytes
        self.context = validation_context(svc.settings)
        self._send = FrameSender(websocket).send
        self._forwarder: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            while (raw := await receive_frame(self.websocket, self.max_frame_bytes,
                                              "frame")) is not None:
                try:
                    await self._handle(parse_frame(raw, self.context))
                except StreamchatError as exc:
                    count_rejection(exc)
                    await self._send(error_frame(exc))
        except WebSocketDisconnect:
            return
        finally:
            await self._stop_forwarding()

    async def _handle(self, frame: ClientFrame) -> None:
        match frame:
            case MessageFrame():
                if self.limits is not None and self.owner is not None:
                    await self.limits.admit_request(self.owner)  # a message is a request
                live = await self.chat.post_message(self.session_id, frame.content, frame.params,
                                                    owner=self.owner, transport=TRANSPORT,
                                                    user=self.user, replaces=frame.replaces)
                await self._forward(live.message.id, live.log.follow(-1))
            case CancelFrame():
                message_id = frame.message_id or await self.chat.reply_in_flight(self.session_id)
                if message_id is None:
                    raise InvalidRequest("no reply is in flight to cancel", code="nothing_to_cancel")
                await self.chat.cancel_message(self.session_id, message_id, self.owner)
            case ResumeFrame():
                events = await self.chat.follow_reply(self.session_id, frame.message_id,
                                                      frame.after, owner=self.owner)
                await self._forward(frame.message_id, events)
            case PingFrame():
                await self._send(PONG)

    async def _forward(self, message_id: str, events: AsyncIterator[Event | None]) -> None:
        await self._stop_forwarding()
        self._forwarder = asyncio.create_task(self._pump(message_id, events))

    async def _pump(self, message_id: str, events: AsyncIterator[Event | None]) -> None:
        async with contextlib.aclosing(events):  # type: ignore[type-var]
            try:
                async for event in events:
                    if event is not None:
                        await self._send(event_frame(event, message_id))
            except (WebSocketDisconnect, OSError, RuntimeError):
                return  # the socket closed under us; the receive loop ends too

    async def _stop_forwarding(self) -> None:
        if self._forwarder is not None:
            forwarder, self._forwarder = self._forwarder, None
            await cancel_and_wait(forwarder, bound_s=STOP_BOUND_S)


async def session_socket(websocket: WebSocket) -> None:
    svc, session_id = services(websocket), websocket.path_params["sid"]
    await websocket.accept(subprotocol(websocket.scope.get("subprotocols", [])))
    try:
        await svc.chat.get_session(session_id, owner(websocket))
    except SessionNotFound:
        await websocket.close(CLOSE_UNKNOWN_SESSION, "unknown session")
        return
    try:
        await SessionSocket(websocket, svc, session_id, owner(websocket)).run()
    except Exception:
        log.exception("session socket %s failed", session_id)
        with contextlib.suppress(Exception):
            await websocket.close(CLOSE_INTERNAL, "internal error")


routes = [WebSocketRoute("/v1/sessions/{sid}/ws", session_socket)]
