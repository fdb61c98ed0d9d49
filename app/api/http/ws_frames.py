"""A WebSocket's frames both ways, for the session's socket and the Responses socket.

In: `receive_frame`, each frame the client sends as bytes, text or binary alike, none over
the body limit (a larger one closes the socket 1009, as a too-large body is a 413).

Out: `FrameSender`. Each socket sends from more than one task (its receive loop answers a bad
frame with an error frame while its forwarder, or each of its lanes, sends events), so the
sends take turns: an `asyncio.Lock` lets them through in the order they asked. Frames after
the accept go straight to the server's `send` (raw_send.py), which raises OSError (uvicorn's
ClientDisconnected) for a client that left; the socket is told WebSocketDisconnect(1006), as
Starlette's own send would."""

from __future__ import annotations

import asyncio

from starlette.websockets import WebSocket, WebSocketDisconnect

from app import metrics
from app.api.http.raw_send import body_send

CLOSE_ABNORMAL = 1006  # the connection dropped without a close frame
CLOSE_TOO_BIG = 1009


async def receive_frame(websocket: WebSocket, max_bytes: int, what: str) -> bytes | None:
    """The client's next frame; None once it has left, or once a frame over `max_bytes`
    closed the socket (1009, "{what} too big")."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    text = message.get("text")
    raw: bytes = text.encode() if text is not None else message.get("bytes") or b""
    if len(raw) > max_bytes:
        metrics.REJECTED.labels("too_large").inc()
        await websocket.close(CLOSE_TOO_BIG, f"{what} too big")
        return None
    return raw


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
