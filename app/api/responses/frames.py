"""A response's typed events on the wire: as SSE frames (`event:` the type, `id:` the sequence
number), encoded once where they are framed, or from a background response's reply log, whose
payloads were encoded once when logged."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import orjson

from app.api.http import sse
from app.api.responses.events import TERMINAL, Event
from app.replies.detached import LOG_OWN
from app.streams import Event as LogEvent


async def frames(events: AsyncIterator[Event]) -> AsyncIterator[bytes]:
    """Events as SSE frames: `event:` is the type, `id:` the sequence number (what
    `starting_after` or `Last-Event-ID` resume after)."""
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for event in events:
            yield sse.frame(orjson.dumps(event), event["type"], event["sequence_number"])


async def logged_frames(events: AsyncIterator[LogEvent | None]) -> AsyncIterator[bytes]:
    """A background response's log as SSE frames, none decoded: each event is logged under its
    own type (app/replies/detached.py), and its sequence number is its seq in the log less one
    (the log's own `start` is 0). A heartbeat is a ping; the log's `start` and `done` are not
    sent (the terminal event is the response's)."""
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for event in events:
            if event is None:
                yield sse.PING
            elif event.type not in LOG_OWN:
                yield sse.frame(event.payload, event.type, event.seq - 1)
                if event.type in TERMINAL:
                    return
