"""Server-sent events: the wire format (pure functions) and a lean streaming response.

Deliberate deviation from sse-starlette: frames are pre-encoded bytes (a session reply's
events are encoded once in its log and shared by all listeners), sent without a per-event
lock or send timeout, which keeps about twice its events/s (shared/DESIGN.md). What
sse-starlette would add is kept: a `: ping` comment after 15 s of silence (produced by the
frame source) and a client disconnect that stops the stream at once, even while it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

PING = b": ping\n\n"
PING_INTERVAL_S = 15.0
HEADERS: dict[str, str] = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
    "connection": "keep-alive",
}


def frame(event: str | None, data: bytes | str, event_id: int | str | None = None) -> bytes:
    """One SSE frame. `data` is one line of JSON (or text without newlines)."""
    raw = data.encode() if isinstance(data, str) else data
    parts = []
    if event is not None:
        parts.append(b"event: " + event.encode() + b"\n")
    if event_id is not None:
        parts.append(b"id: " + str(event_id).encode() + b"\n")
    for line in raw.split(b"\n"):  # a newline inside data must become another data: line
        parts.append(b"data: " + line + b"\n")
    parts.append(b"\n")
    return b"".join(parts)


def json_frame(data: object, event: str | None = None, event_id: int | None = None) -> bytes:
    return frame(event, orjson.dumps(data), event_id)


def parse_last_event_id(header: str | None, query: str | None) -> int:
    """The seq after which to resume; -1 (from the start) when absent or unreadable."""
    for raw in (header, query):
        if raw is not None and raw.strip().lstrip("-").isdigit():
            return max(-1, int(raw.strip()))
    return -1


class EventStreamResponse(Response):
    """A response that sends `frames` as they come and stops when the client leaves."""

    def __init__(self, frames: AsyncIterator[bytes], *, status: int = 200,
                 headers: Mapping[str, str] | None = None) -> None:
        self.frames = frames
        self.status_code = status
        self.background = None
        self.stream_headers = {**HEADERS, **(headers or {})}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({
            "type": "http.response.start",
            "status": self.status_code,
            "headers": [(k.encode(), v.encode()) for k, v in self.stream_headers.items()],
        })
        pump = asyncio.create_task(self._pump(send))
        watch = asyncio.create_task(self._watch_disconnect(receive))
        try:
            await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, watch):
                task.cancel()
            await asyncio.gather(pump, watch, return_exceptions=True)
        if pump.done() and not pump.cancelled() and pump.exception() is not None:
            raise pump.exception()  # type: ignore[misc]

    async def _pump(self, send: Send) -> None:
        async with contextlib.aclosing(self.frames) as frames:  # type: ignore[type-var]
            try:
                async for chunk in frames:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                return  # the client went away mid-send

    @staticmethod
    async def _watch_disconnect(receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
