"""Reply logs mirrored to Redis Streams, so any replica can follow and resume any reply.

The replica generating a reply keeps its log in memory (its own listeners read that, at memory
speed) and mirrors each event to the stream `sc:r:{message_id}`, batched per wake-up in one
pipeline. Entry ids are `0-{seq+1}`, so resuming after seq N is XREAD from id `0-{N+1}`.
Progress before the first token (not numbered) is the value of `sc:p:{message_id}`, which
remote listeners read until tokens flow. Listeners elsewhere XREAD with a short block, and keep
`sc:w:{message_id}` alive so the owner knows the reply is still watched; when the reply is no
longer generated anywhere (its lease, app/leases/, is no longer held by it: it ended, or its
replica died) they raise ReplyGone and the caller goes on from what was stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from app.leases import REPLY
from app.streams.log import PROGRESS_SEQ, Event, ReplyGone, ReplyLog
from app.streams.memory import MemoryReplyLogs

log = logging.getLogger("streamchat.streams")

PREFIX = "sc:"
# (kind, lease id, holder) -> is a replica still generating it (still holding that lease)?
IsLive = Callable[[str, str, str], Awaitable[bool]]


def stream_key(message_id: str) -> str:
    return f"{PREFIX}r:{message_id}"


def progress_key(message_id: str) -> str:
    return f"{PREFIX}p:{message_id}"


class RedisReplyLogs:
    def __init__(self, redis: Redis, is_live: IsLive, *, keep_s: float = 3600.0,
                 block_ms: int = 1000) -> None:
        # redis-py's type hints cover sync and async clients at once; treat replies as Any.
        self.redis: Any = redis
        self.is_live = is_live
        self.keep_ms = int(keep_s * 1000)
        self.block_ms = block_ms
        self.local = MemoryReplyLogs()
        self._queue: list[tuple[str, Event]] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    # -- writing (the owner replica) ----------------------------------------------------------

    def open(self, message_id: str, lease_id: str) -> ReplyLog:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="reply-log-writer")
        reply_log = self.local.open(message_id, lease_id)
        reply_log.on_append = lambda event: self._enqueue(message_id, event)
        reply_log.on_progress = lambda event: self._enqueue(message_id, event)
        return reply_log

    def release(self, message_id: str) -> None:
        self.local.release(message_id)

    def get(self, message_id: str) -> ReplyLog | None:
        return self.local.get(message_id)

    def _enqueue(self, message_id: str, event: Event) -> None:
        self._queue.append((message_id, event))
        self._wake.set()

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            try:
                await self._write(batch)
            except Exception:  # Redis down: local listeners still get every event
                log.exception("mirroring %d reply events to Redis failed", len(batch))

    async def _write(self, batch: list[tuple[str, Event]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for message_id, event in batch:
                if not event.numbered:  # progress: only the latest matters
                    pipe.set(progress_key(message_id), event.type.encode() + b" " + event.payload,
                             px=self.keep_ms)
                    continue
                key = stream_key(message_id)
                pipe.xadd(key, {"t": event.type, "d": event.payload}, id=f"0-{event.seq + 1}")
                if event.terminal or event.seq == 0:
                    pipe.pexpire(key, self.keep_ms)
                if event.seq == 1 or event.terminal:  # tokens flow, or it ended: no progress
                    pipe.delete(progress_key(message_id))
            await pipe.execute()

    async def flush(self) -> None:
        """Write what is queued now (used before shutdown and by tests)."""
        batch, self._queue = self._queue, []
        if batch:
            await self._write(batch)

    # -- following (any replica) ----------------------------------------------------------------

    async def follow(self, message_id: str, lease_id: str, after: int = -1,
                     heartbeat_s: float | None = None, *, kind: str = REPLY
                     ) -> AsyncIterator[Event | None] | None:
        local = self.local.get(message_id)
        if local is not None:
            return local.follow(after, heartbeat_s)
        # Generated elsewhere, or queued there and not yet started: follow its stream.
        return self._follow_remote(message_id, (kind, lease_id), after, heartbeat_s)

    async def recorded(self, message_id: str) -> list[Event]:
        entries = await self.redis.xrange(stream_key(message_id))
        return [_event(entry_id, fields) for entry_id, fields in entries]

    async def _follow_remote(self, message_id: str, lease: tuple[str, str], after: int,
                             heartbeat_s: float | None) -> AsyncIterator[Event | None]:
        key, watch = stream_key(message_id), f"{PREFIX}w:{message_id}"
        last_id = f"0-{after + 1}"
        idle_ms = 0
        shown: bytes | None = None  # the progress given last; None once tokens flow
        progress = after < 1
        while True:
            await self.redis.set(watch, b"1", px=self.block_ms * 3)
            if progress:
                raw = await self.redis.get(progress_key(message_id))
                if raw and raw != shown:
                    shown = raw
                    yield _progress(raw)
            reply = await self.redis.xread({key: last_id}, count=256, block=self.block_ms)
            if not reply:
                idle_ms += self.block_ms
                if heartbeat_s is not None and idle_ms >= heartbeat_s * 1000:
                    idle_ms = 0
                    yield None
                if not await self.is_live(*lease, message_id):
                    # It ended (its last events may not be mirrored yet) or its replica died:
                    # the rest is with the stored message.
                    raise ReplyGone(message_id)
                continue
            idle_ms = 0
            for entry_id, fields in reply[0][1]:
                event = _event(entry_id, fields)
                last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                progress = progress and event.seq < 1
                yield event
                if event.terminal:
                    return

    async def watched_elsewhere(self, message_id: str) -> bool:
        return bool(await self.redis.exists(f"{PREFIX}w:{message_id}"))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.flush()
        if self._writer is not None:
            self._writer.cancel()
        await self.local.close()


def _progress(raw: bytes) -> Event:
    kind, _, payload = raw.partition(b" ")
    return Event(PROGRESS_SEQ, kind.decode(), payload)


def _event(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Event:
    raw_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    payload = fields[b"d"]
    return Event(int(raw_id.split("-")[1]) - 1, fields[b"t"].decode(), payload)
