"""One response's run: its chat completion's chunks (objects) through its builder into typed
events (objects), and the response stored (`store: true`) before its terminal event goes out,
so a client that saw the end finds it with GET, and a response chained to it finds its
conversation (stored.py). The builder, which knows the events' wire shapes, is the API's
(`app/api/responses/events.py`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from app.records import Records
from app.responses.stored import KIND, Messages

Event = dict[str, Any]


class Builder(Protocol):
    """What a run needs of the events' builder."""

    response: dict[str, Any]

    def opening(self) -> list[Event]: ...

    def feed(self, chunk: dict[str, Any]) -> list[Event]: ...

    def close(self, *, cancelled: bool = False) -> list[Event]: ...

    def snapshot(self) -> dict[str, Any]: ...

    def conversation(self) -> Messages: ...


class ResponseRun:
    def __init__(self, builder: Builder, records: Records, *, owner: str | None,
                 conversation: Messages, store: bool, background: bool,
                 then: Callable[[dict[str, Any]], Awaitable[None]] | None = None) -> None:
        self.builder = builder
        self.records = records
        self.owner = owner
        self.conversation = conversation  # what came before this reply: history and input
        self.store = store
        self.background = background
        # Given the response once it has ended (a conversation's items appended), before its
        # terminal event goes out; not when its client left.
        self.then = then

    async def save(self) -> None:
        if self.store:
            await self.records.put(KIND, self.builder.response["id"], {
                "response": self.builder.snapshot(), "owner": self.owner,
                "resumable": self.background,  # detached: its events are in a reply log
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
        if self.then is not None:
            await self.then(self.builder.snapshot())
        for event in closing:
            yield event


async def whole(events: AsyncIterator[Event]) -> None:
    """Run the events through, for a response returned whole."""
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for _ in events:
            pass
