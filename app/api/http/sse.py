"""Server-sent events: the wire format both ways (pure functions), and a lean streaming response.

Deliberate deviation from sse-starlette: frames are pre-encoded bytes (a reply's event JSON is
encoded once in its log and shared by every listener), sent without a per-event lock or send
timeout, which keeps about twice its events/s (docs/DESIGN.md). What sse-starlette would add is
kept: a `: ping` comment after 15 s of silence and a client disconnect that stops the stream at
once, even while it waits (app/api/http/disconnect.py). The ping comes from the event source (a
reply's log, which knows when it is quiet) or, for a source that cannot tell (an OpenAI
stream: queued, prefilling or between tokens), from the response's own timer (`ping_s`,
app/api/http/keepalive.py).

The first frame after a ping starts with an empty comment (`:` and a blank line), added by
`EventStreamResponse` to every stream. A compliant parser skips it; it is there for clients
that strip each network read before splitting it on blank lines (vLLM's benchmark client,
0.32, does): a ping read on its own then loses its blank line and would glue itself to the
next event, which such a client drops. The empty comment gives the glued ping its blank line
back.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.api.http.disconnect import unless_disconnected
from app.api.http.keepalive import Pinger
from app.api.http.raw_send import body_send
from app.streams import Event

PING = b": ping\n\n"
AFTER_PING = b":\n\n"  # starts the first frame after a ping (see the module docstring)
PING_INTERVAL_S = 15.0
HEADERS: dict[str, str] = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
    "connection": "keep-alive",
}


def frame(data: bytes, event: str | None = None, event_id: int | None = None) -> bytes:
    """One SSE frame. A newline inside `data` starts another `data:` line, as the format says."""
    head = b""
    if event is not None:
        head += b"event: " + event.encode() + b"\n"
    if event_id is not None:
        head += b"id: %d\n" % event_id
    if b"\n" in data:
        return head + b"".join(b"data: " + line + b"\n" for line in data.split(b"\n")) + b"\n"
    return head + b"data: " + data + b"\n\n"


def event_frame(event: Event) -> bytes:
    """A reply event: its type, its seq as the id (what `Last-Event-ID` resumes from), its JSON.
    Progress (`queued`, `prefill`) has no id: a browser's `Last-Event-ID` stays the last
    numbered event's, so a resume never skips or repeats text."""
    return frame(event.payload, event.type, event.seq if event.numbered else None)


DONE = frame(b"[DONE]")  # the end of an OpenAI stream


def chunk_frame(event: Event) -> bytes:
    """An event of a resumable OpenAI stream (app/replies/detached.py): a chunk's JSON, or
    `[DONE]` at its end, with its seq as the id. No `event:` line: OpenAI's SDKs read only
    unnamed events as chunks. `start` (who started it) is not sent."""
    if event.type == "start":
        return b""
    return frame(b"[DONE]" if event.terminal else event.payload, event_id=event.seq)


_SEQ = re.compile(r"-?[0-9]{1,18}")  # ASCII digits, and few enough for any real reply


def parse_last_event_id(header: str | None, query: str | None) -> int:
    """The seq after which to resume; -1 (from the start) when absent or unreadable."""
    for raw in (header, query):
        if raw is not None and _SEQ.fullmatch(raw.strip()):
            return max(-1, int(raw.strip()))
    return -1


@dataclass(slots=True)
class ParsedEvent:
    event: str
    data: str
    id: str | None = None


class EventParser:
    """Incremental SSE parsing (the WHATWG rules that matter here), for clients of this
    service written in Python: the tests and the benchmarks. Feed it bytes as they arrive;
    it yields each event when the blank line that ends it arrives. Comments (`: ping`) are
    counted in `comments`, not yielded."""

    def __init__(self) -> None:
        self._buffer = b""
        self.comments = 0

    def feed(self, chunk: bytes) -> Iterator[ParsedEvent]:
        # Normalise on the whole buffer so a \r\n split across two chunks is still caught.
        self._buffer = (self._buffer + chunk).replace(b"\r\n", b"\n")
        while (end := self._buffer.find(b"\n\n")) >= 0:
            block, self._buffer = self._buffer[:end], self._buffer[end + 2:]
            event = self._parse(block.decode())
            if event is not None:
                yield event

    def _parse(self, block: str) -> ParsedEvent | None:
        name, data, event_id = "message", [], None
        for line in block.split("\n"):
            if line.startswith(":"):
                self.comments += 1
                continue
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
            elif key == "id":
                event_id = value
        return ParsedEvent(name, "\n".join(data), event_id) if data else None


class EventStreamResponse(Response):
    """A response that sends `frames` as they come and stops when the client leaves."""

    def __init__(self, frames: AsyncIterator[bytes], *, status: int = 200,
                 headers: Mapping[str, str] | None = None,
                 on_close: Callable[[], Awaitable[None]] | None = None,
                 ping_s: float | None = None) -> None:
        self.frames = frames
        self.ping_s = ping_s  # send PING after this long without a frame
        self.status_code = status
        self.background = None
        self.stream_headers = {**HEADERS, **(headers or {})}
        self.on_close = on_close  # runs once the response is over, however it ended

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({
            "type": "http.response.start",
            "status": self.status_code,
            "headers": [(k.lower().encode(), v.encode()) for k, v in self.stream_headers.items()],
        })
        try:
            await unless_disconnected(receive, self._pump(body_send(scope, send)))
        finally:
            if self.on_close is not None:
                await self.on_close()

    async def _pump(self, send: Send) -> None:
        pinger = None if self.ping_s is None else Pinger(send, self.ping_s, PING)
        async with contextlib.aclosing(self.frames) as frames:  # type: ignore[type-var]
            try:
                pinged = False
                async for chunk in frames:
                    if pinger is not None and await pinger.before_send():
                        pinged = True
                    if pinged and chunk != PING:
                        chunk = AFTER_PING + chunk  # see the module docstring
                    pinged = chunk == PING
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    if pinger is not None:
                        pinger.after_send()
                if pinger is not None:
                    await pinger.stop()
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                return  # the client went away mid-send
            finally:
                if pinger is not None:
                    await pinger.stop()


async def openai_frames(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """An OpenAI stream's chunks, each encoded and framed once, then `data: [DONE]`."""
    async with contextlib.aclosing(chunks):  # type: ignore[type-var]
        async for chunk in chunks:
            yield frame(orjson.dumps(chunk))
    yield DONE


async def chunk_frames(events: AsyncIterator[Event | None]) -> AsyncIterator[bytes]:
    """A resumable OpenAI stream's events as SSE frames; a heartbeat as a `: ping` comment."""
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for event in events:
            framed = PING if event is None else chunk_frame(event)
            if framed:
                yield framed


async def event_frames(events: AsyncIterator[Event | None]) -> AsyncIterator[bytes]:
    """A reply's events as SSE frames; a heartbeat (None) as a `: ping` comment."""
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for event in events:
            yield PING if event is None else event_frame(event)
