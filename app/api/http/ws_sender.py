"""Frames out of a WebSocket, one at a time: the session's socket and the Responses socket.

Each socket sends from more than one task (its receive loop answers a bad frame with an error
frame while its forwarder, or each of its lanes, sends events), so the sends take turns: an
`asyncio.Lock` lets them through in the order they asked. Frames after the accept go straight
to the server's `send` (raw_send.py), which raises OSError (uvicorn's ClientDisconnected) for a
client that left; the socket is told WebSocketDisconnect(1006), as Starlette's own send would."""

from __future__ import annotations

import asyncio

from starlette.websockets import WebSocket, WebSocketDisconnect

from app.api.http.raw_send import body_send

CLOSE_ABNORMAL = 1006  # the connection dropped without a close frame


class FrameSender:
    def __init__(self, websocket: WebSocket) -> None:
        self._lock = asyncio.Lock()
        self._send = body_send(websocket.scope, websocket.send)

    async def send(self, data: bytes) -> None:
        """`data` (UTF-8 JSON, encoded once by its owner) as one text frame."""
        async with self._lock:
            try:
                await self._send({"type": "websocket.send", "text": data.decode()})
            except OSError:  # the client left
                raise WebSocketDisconnect(code=CLOSE_ABNORMAL) from None
