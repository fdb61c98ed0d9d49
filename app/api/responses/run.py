"""One response's run: its chat completion's chunks turned into typed events, and the response
stored (`store: true`) before its terminal event goes out, so a client that saw the end finds it
with GET, and a response chained to it (`previous_response_id`) finds its conversation.

A stored record is the response object, the key that created it and the conversation so far
(the chain's history, this input, this output) as chat messages, kept with the sessions
(app/records/). Chaining renders that conversation again: each turn's prompt starts
with the last turn's prompt and reply, so vLLM's prefix cache serves it (`cached_tokens`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson

from app.api.http import sse
from app.api.responses.events import TERMINAL, Event, ResponseBuilder
from app.api.responses.schemas import Messages
from app.errors import InvalidRequest, NotFound
from app.ownership import visible
from app.records import Record, Records

KIND = "response"


class ResponseRun:
    def __init__(self, builder: ResponseBuilder, records: Records, *, owner: str | None,
                 conversation: Messages, store: bool, background: bool) -> None:
        self.builder = builder
        self.records = records
        self.owner = owner
        self.conversation = conversation  # what came before this reply: history and input
        self.store = store
        self.background = background

    async def save(self) -> None:
        if self.store:
            await self.records.put(KIND, self.builder.response["id"], {
                "response": self.builder.snapshot(), "owner": self.owner,
                "messages": [*self.conversation, *self.builder.conversation()]})

    async def events(self, chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[Event]:
        """The response's events (objects), from the chat completion's chunks (objects)."""
        for event in self.builder.opening():
            yield event
        if self.background:
            await self.save()  # in_progress, for GET
        cancelled = False
        try:
            async with contextlib.aclosing(chunks):  # type: ignore[type-var]
                async for chunk in chunks:
                    for event in self.builder.feed(chunk):
                        yield event
        except asyncio.CancelledError:
            if not self.background:
                raise  # the client left: nothing to keep
            cancelled = True  # POST .../cancel, or shutdown: the response ends cancelled
        closing = self.builder.close(cancelled=cancelled)
        await self.save()
        for event in closing:
            yield event


async def whole(events: AsyncIterator[Event]) -> None:
    """Run the events through, for a response returned whole."""
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for _ in events:
            pass


async def frames(events: AsyncIterator[Event]) -> AsyncIterator[bytes]:
    """Events as SSE frames: `event:` is the type, `id:` the sequence number (what
    `starting_after` or `Last-Event-ID` resume after)."""
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for event in events:
            yield sse.frame(orjson.dumps(event), event["type"], event["sequence_number"])


async def logged_frames(events: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    """A background response's log as SSE frames: its events, a heartbeat as a ping; the log's
    own `start` and `done` are not sent (the terminal event is the response's)."""
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for event in events:
            if event is None:
                yield sse.PING
            elif event.type == "chunk":
                yield sse.frame(event.payload, event.data["type"], event.data["sequence_number"])
                if event.data["type"] in TERMINAL:
                    return


async def stored(records: Records, response_id: str, owner: str | None,
                 param: str = "response_id") -> Record:
    """The stored response; another key's is as if it did not exist."""
    record = await records.get(KIND, response_id)
    if record is None or not visible(record.get("owner"), owner):
        if param == "previous_response_id":
            raise InvalidRequest(f"previous response {response_id} not found (unknown, "
                                 "expired, stored with store: false, or not yours)",
                                 param=param, code="previous_response_not_found")
        raise NotFound(f"response {response_id} not found (unknown, expired, or not yours)",
                       param=param, code="response_not_found")
    return record
