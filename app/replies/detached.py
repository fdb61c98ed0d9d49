"""Detached streams: stateless generations that outlive their client, so that it can resume.

An OpenAI chat completion streamed with `X-Stream-Resumable` (docs/API.md) runs in its own task,
writing each chunk (an object, encoded once by the log) to a `ReplyLog` (app/streams/) under the
completion's id: the same logs, memory or Redis Streams, that make session replies resumable.
Its clients follow the log, so the generation survives them: after the last one left it goes on
for the orphan grace, then it is aborted (app/replies/orphans.py); a background response (the
Responses API) needs no follower and runs until it ends or `cancel` stops it, on whichever
replica runs it. The log's
first event (`start`, seq 0) holds the key that started it; only that key may follow it. A
finished stream can be resumed for `keep_s` here (for the log's own retention on another
replica, through Redis).

Across replicas, the replica generating holds the stream's lease (app/leases/, kind `stream`,
id and holder the stream's id), which is how another replica's follower tells a stream still
generated from one whose replica died, and how `cancel` reaches it. Nothing here knows the
chunks' format."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.errors import NotFound
from app.generation import stop
from app.leases import STREAM, Leases
from app.ownership import visible
from app.replies.orphans import OrphanGrace
from app.streams import Event, ReplyLog, ReplyLogs, follow_until_gone
from app.tasks import wait_ended

log = logging.getLogger("streamchat.replies")

KEEP_S = 600.0  # how long a finished stream stays resumable on the replica that generated it
Followed = AsyncIterator[Event | None]  # None: nothing happened for a heartbeat interval
Item = dict[str, Any]  # one chunk (or Responses event) of a detached stream
LOG_OWN = frozenset({"start", "done", "error"})  # the event types a detached log writes itself


@dataclass(eq=False)
class Detached:
    id: str
    owner: str | None
    log: ReplyLog
    task: asyncio.Task[None] | None = None
    ran: bool = False  # its task got to `_run` (one stopped before its first step did not)
    expires_at: float | None = None  # loop time; set once finished


class DetachedStreams:
    def __init__(self, logs: ReplyLogs, leases: Leases, *, orphan_grace_s: float,
                 keep_s: float = KEEP_S) -> None:
        self.logs = logs
        self.leases = leases
        self.orphans = OrphanGrace(logs, orphan_grace_s)
        self.keep_s = keep_s
        self._streams: dict[str, Detached] = {}
        leases.serve(STREAM, self._stop)

    async def start(self, stream_id: str, owner: str | None, items: AsyncIterator[Item],
                    on_end: Callable[[], Awaitable[None]], *, background: bool = False
                    ) -> ReplyLog:
        """Run `items` (chunks or events, as objects: the log encodes each once) into a new
        log in the background; `on_end` runs
        once it ended, however it ended. The orphan grace starts at once: the client may have
        left before it follows the log. A `background` stream needs no follower: it runs
        until it ends or `cancel` stops it."""
        self._forget_expired()
        await self.leases.start()  # hears cancels from other replicas (once)
        await self.leases.acquire(STREAM, stream_id, stream_id)  # a new id: never taken
        stream = Detached(stream_id, owner, self.logs.open(stream_id, stream_id))
        stream.log.append("start", {"owner": owner})
        self._streams[stream_id] = stream
        task = stream.task = asyncio.create_task(self._run(stream, items, on_end),
                                                 name=f"detached-{stream_id}")
        task.add_done_callback(lambda _: self._ended(stream, items, on_end))
        if not background:
            stop_watch = self.orphans.watch(stream.log, lambda: not task.done(),
                                            lambda: stop(task, "client_left"), orphaned_now=True)
            task.add_done_callback(lambda _: stop_watch())
        return stream.log

    async def running(self, stream_id: str) -> bool:
        """Whether the stream is generated still, here or on another replica."""
        stream = self._streams.get(stream_id)
        if stream is not None and stream.task is not None:
            return not stream.task.done()
        return not await self.leases.gone(STREAM, stream_id, stream_id)

    async def cancel(self, stream_id: str) -> None:
        """Stop the stream, here or on the replica generating it, and wait (a few seconds at
        most) until it has ended."""
        await self.leases.cancel(STREAM, stream_id)

    async def _stop(self, stream_id: str) -> None:
        """A stream run here: stopped (for `cancel`, here or relayed), once it has ended."""
        stream = self._streams.get(stream_id)
        if stream is not None and stream.task is not None:
            stop(stream.task, "cancel")
            await _ended(stream)

    async def _run(self, stream: Detached, items: AsyncIterator[Item],
                   on_end: Callable[[], Awaitable[None]]) -> None:
        stream.ran = True
        try:
            async with contextlib.aclosing(items):  # type: ignore[type-var]
                async for item in items:
                    stream.log.append(logged_as(item), item)
        except asyncio.CancelledError:
            pass  # abandoned, or shut down: what it sent stays resumable, then its end
        except Exception:
            log.exception("detached stream %s failed", stream.id)
        finally:
            await self._end(stream, on_end)

    def _ended(self, stream: Detached, items: AsyncIterator[Item],
               on_end: Callable[[], Awaitable[None]]) -> None:
        """A task stopped before it first ran never entered `_run`: it still ends, here."""
        if stream.ran:
            return

        async def end() -> None:
            with contextlib.suppress(Exception):
                await items.aclose()  # type: ignore[attr-defined]
            await self._end(stream, on_end)

        stream.task = asyncio.create_task(end(), name=f"detached-{stream.id}-end")

    async def _end(self, stream: Detached, on_end: Callable[[], Awaitable[None]]) -> None:
        """How a stream ends, once: `on_end`, then the log's `done`, the lease released."""
        try:
            await on_end()
        finally:
            stream.log.append("done", {})
            self.logs.release(stream.id)
            stream.expires_at = asyncio.get_running_loop().time() + self.keep_s
            await self.leases.release(STREAM, stream.id, stream.id)

    def forget(self, stream_id: str) -> None:
        """A stream that ended and was deleted by its owner: its events are kept no longer (a
        deleted response's log would otherwise stay until `keep_s`, reachable by no one)."""
        stream = self._streams.get(stream_id)
        if stream is not None and stream.task is not None and stream.task.done():
            del self._streams[stream_id]

    async def follow(self, stream_id: str, after: int = -1, *, heartbeat_s: float | None = None,
                     owner: str | None = None) -> Followed:
        """The stream's events after `after`: live, wherever it is generated, or replayed once
        it ended. Always ends with its terminal event. NotFound for an unknown or expired id,
        and for another key's stream."""
        self._forget_expired()
        stream = self._streams.get(stream_id)
        if stream is not None:
            _check_owner(stream_id, stream.owner, owner)
            return stream.log.follow(after, heartbeat_s)
        recorded = await self.logs.recorded(stream_id)  # another replica's, through Redis
        if not recorded or recorded[0].type != "start":
            raise _not_found(stream_id)
        _check_owner(stream_id, recorded[0].data.get("owner"), owner)
        if not recorded[-1].terminal:
            events = await self.logs.follow(stream_id, stream_id, after, heartbeat_s, kind=STREAM)
            if events is not None:
                return self._until_gone(stream_id, events, after)
        return ReplyLog.ended(stream_id, stream_id, recorded).follow(after)

    def _until_gone(self, stream_id: str, events: Followed, after: int) -> Followed:
        """A stream followed on another replica; if that replica stops (it ended, or died)
        before its last event reached this one, the rest from its recorded log."""

        async def recorded_rest(seen: int) -> Followed:
            # Ended with `done` here if its replica died before writing its end.
            recorded = await self.logs.recorded(stream_id)
            async for event in ReplyLog.ended(stream_id, stream_id, recorded).follow(seen):
                yield event

        return follow_until_gone(events, after, recorded_rest)

    def _forget_expired(self) -> None:
        now = asyncio.get_running_loop().time()
        for stream_id, stream in list(self._streams.items()):
            if stream.expires_at is not None and stream.expires_at <= now:
                del self._streams[stream_id]

    async def close(self) -> None:
        """Abort what is still generated (shutdown)."""
        streams = list(self._streams.values())
        for stream in streams:
            if stream.task is not None:
                stop(stream.task, "drain")
        for stream in streams:
            await _ended(stream)


async def _ended(stream: Detached) -> None:
    """Wait until a stopped stream has ended: its task, then the end of one that never ran.
    Unbounded: its end stores it (each store call bounded by the store's client)."""
    while stream.task is not None and not stream.task.done():
        await wait_ended(stream.task)


def logged_as(item: Item) -> str:
    """An item's event type in the log: its own `type` (a Responses event's), so that a
    follower frames it without decoding it; `chunk` for an item with none (a chat completion
    chunk), or with one the log keeps for itself."""
    name = item.get("type")
    return name if isinstance(name, str) and name not in LOG_OWN else "chunk"


def _check_owner(stream_id: str, started_by: str | None, asking: str | None) -> None:
    if not visible(started_by, asking):
        raise _not_found(stream_id)  # another key's stream: as if it did not exist


def _not_found(stream_id: str) -> NotFound:
    return NotFound(f"stream {stream_id} not found (unknown, expired, or not yours)",
                    param="stream_id", code="stream_not_found")
