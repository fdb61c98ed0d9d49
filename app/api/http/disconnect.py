"""The one disconnect watcher: run a response's work until it ends or the client leaves.

ASGI reports a client that went away as an `http.disconnect` message from `receive`, but only
to whoever is reading it; a response busy sending (or waiting for the next token) would not
notice until its next write fails. Every streaming and non-streaming response that generates
runs under `unless_disconnected`, so a client that leaves cancels its work at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

# What a client that left before its response is logged with: nginx's "client closed request".
CLIENT_CLOSED = 499
Result = TypeVar("Result")
Receive = Callable[[], Awaitable[Any]]


async def until_disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(receive: Receive,
                              work: Coroutine[Any, Any, Result]) -> tuple[bool, Result | None]:
    """Run `work`; cancel it if the client leaves first. Returns (finished, its result)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(until_disconnected(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        task.cancel()  # a no-op once it has finished
        await asyncio.gather(task, watcher, return_exceptions=True)
    if task.cancelled():
        return False, None
    return True, task.result()
