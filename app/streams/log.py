"""A reply's event log: what makes a reply resumable.

Every event of a reply (start, token..., done | error) is appended to its log with a sequence
number. Listeners follow the log from any point: events after `after` are replayed, then the
live ones follow, in order and without duplicates. The log counts its listeners so the chat
service can tell when a reply has been orphaned.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

TERMINAL_EVENTS = frozenset({"done", "error"})


@dataclass(slots=True)
class Event:
    seq: int
    type: str
    data: dict[str, Any]
    # The JSON of `data`, encoded once and shared by every listener and transport.
    payload: bytes = b""
    _sse: bytes | None = field(default=None, repr=False)
    _ws: bytes | None = field(default=None, repr=False)

    def ws_frame(self, message_id: str) -> bytes:
        """The WebSocket form: {"type", "message_id", "seq", ...data}."""
        if self._ws is None:
            head = b'{"type":"%s","message_id":"%s","seq":%d' % (
                self.type.encode(), message_id.encode(), self.seq)
            self._ws = head + (b"," + self.payload[1:] if len(self.payload) > 2 else b"}")
        return self._ws

    def sse_frame(self) -> bytes:
        if self._sse is None:
            self._sse = b"event: %s\nid: %d\ndata: %s\n\n" % (
                self.type.encode(), self.seq, self.payload)
        return self._sse


class ReplyLog:
    def __init__(self, message_id: str, session_id: str) -> None:
        self.message_id = message_id
        self.session_id = session_id
        self.events: list[Event] = []
        self.finished = False
        self.finished_at: float | None = None
        self.listeners = 0
        # Called when the listener count drops to zero before the reply finished.
        self.on_orphaned: Callable[[], None] | None = None
        self.on_listener: Callable[[], None] | None = None
        # Called with each appended event (a replicated log mirrors it to Redis).
        self.on_append: Callable[[Event], None] | None = None
        self._wakeup = asyncio.Event()

    def append(self, type_: str, data: dict[str, Any]) -> Event:
        if self.finished:
            raise RuntimeError(f"reply {self.message_id} already finished")
        event = Event(len(self.events), type_, data, orjson.dumps(data))
        self.events.append(event)
        if type_ in TERMINAL_EVENTS:
            self.finished = True
            self.finished_at = time.monotonic()
        wakeup, self._wakeup = self._wakeup, asyncio.Event()
        wakeup.set()
        if self.on_append is not None:
            self.on_append(event)
        return event

    async def follow(self, after: int = -1, heartbeat_s: float | None = None
                     ) -> AsyncIterator[Event | None]:
        """Events with seq > after, then live ones until the terminal event.

        With `heartbeat_s`, yields None after that many seconds without an event, so a
        transport can keep an idle connection alive."""
        self.listeners += 1
        if self.on_listener is not None:
            self.on_listener()
        try:
            index = max(after + 1, 0)
            while True:
                wakeup = self._wakeup
                while index < len(self.events):
                    event = self.events[index]
                    index += 1
                    yield event
                if self.finished:
                    return
                if heartbeat_s is None:
                    await wakeup.wait()
                    continue
                try:
                    # asyncio.timeout arms a timer on this task: no extra task per wait.
                    async with asyncio.timeout(heartbeat_s):
                        await wakeup.wait()
                except TimeoutError:
                    yield None
        finally:
            self.listeners -= 1
            if self.listeners == 0 and not self.finished and self.on_orphaned is not None:
                self.on_orphaned()

    async def wait_finished(self) -> None:
        while not self.finished:
            await self._wakeup.wait()
