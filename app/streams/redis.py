"""Reply logs mirrored to Redis Streams, so any replica can follow and resume any reply.

The replica generating a reply keeps its log in memory (its own listeners read that, at memory
speed, each event once Redis has it) and mirrors each event to the stream `sc:r:{message_id}`,
batched per wake-up in one pipeline (app/streams/mirror.py; a Redis that fails or hangs stalls
nobody longer than its timeout). Entry ids are `0-{seq+1}`, so resuming after seq N is XREAD
from id `0-{N+1}`.
Progress before the first token (not numbered) is the value of `sc:p:{message_id}`, which
remote listeners read until tokens flow. Listeners elsewhere XREAD with a short block, and keep
`sc:w:{message_id}` alive so the owner knows the reply is still watched; when the reply is no
longer generated anywhere (its lease, app/leases/, is no longer held by it: it ended, or its
replica died) they raise ReplyGone and the caller goes on from what was stored; when Redis does
not answer in time they raise StoreUnavailable (the client resumes once it is back).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.errors import StoreUnavailable
from app.leases import REPLY
from app.streams.log import PROGRESS_SEQ, Event, ReplyGone, ReplyLog
from app.streams.memory import MemoryReplyLogs
from app.streams.mirror import PREFIX, TIMEOUT_S, Mirror, entry_seq, progress_key, stream_key

# (kind, lease id, holder) -> is a replica still generating it (still holding that lease)?
IsLive = Callable[[str, str, str], Awaitable[bool]]


class RedisReplyLogs:
    def __init__(self, redis: Redis, is_live: IsLive, *, keep_s: float = 3600.0,
                 block_ms: int = 1000, timeout_s: float = TIMEOUT_S) -> None:
        # redis-py's type hints cover sync and async clients at once; treat replies as Any.
        self.redis: Any = redis
        self.is_live = is_live
        self.keep_ms = int(keep_s * 1000)
        self.block_ms = block_ms
        self.timeout_s = timeout_s
        self.local = MemoryReplyLogs()
        self.mirror = Mirror(redis, keep_ms=self.keep_ms, timeout_s=timeout_s)

    # -- writing (the owner replica) ----------------------------------------------------------

    def open(self, message_id: str, lease_id: str) -> ReplyLog:
        reply_log = self.local.open(message_id, lease_id)
        self.mirror.attach(reply_log)
        return reply_log

    def release(self, message_id: str) -> None:
        self.mirror.detach(message_id)
        self.local.release(message_id)

    def get(self, message_id: str) -> ReplyLog | None:
        return self.local.get(message_id)

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
            async with self._answering(self.timeout_s):
                await self.redis.set(watch, b"1", px=self.block_ms * 3)
                raw = await self.redis.get(progress_key(message_id)) if progress else None
            if raw and raw != shown:
                shown = raw
                yield _progress(raw)
            async with self._answering(self.block_ms / 1000 + self.timeout_s):
                reply = await self.redis.xread({key: last_id}, count=256, block=self.block_ms)
                live = bool(reply) or await self.is_live(*lease, message_id)
            if not reply:
                idle_ms += self.block_ms
                if heartbeat_s is not None and idle_ms >= heartbeat_s * 1000:
                    idle_ms = 0
                    yield None
                if not live:
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

    @asynccontextmanager
    async def _answering(self, timeout_s: float) -> AsyncIterator[None]:
        """A follower's Redis calls: no answer in time (down, hung) is StoreUnavailable."""
        try:
            async with asyncio.timeout(timeout_s):
                yield
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable("the shared store (Redis) does not answer: resume this "
                                   "reply (Last-Event-ID) once it is back") from exc

    async def watched_elsewhere(self, message_id: str) -> bool:
        return bool(await self.redis.exists(f"{PREFIX}w:{message_id}"))

    async def close(self) -> None:
        await self.mirror.close()
        await self.local.close()


def _progress(raw: bytes) -> Event:
    kind, _, payload = raw.partition(b" ")
    return Event(PROGRESS_SEQ, kind.decode(), payload)


def _event(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Event:
    return Event(entry_seq(entry_id), fields[b"t"].decode(), fields[b"d"])
