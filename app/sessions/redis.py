"""Redis session store: sessions shared by every replica, surviving restarts.

Layout (prefix `sc:`):
  s:{sid}           JSON of the session without its messages
  s:{sid}:order     list of message ids, oldest first
  s:{sid}:msgs      hash message id -> message JSON
  index             sorted set of session ids by creation time (owner:{owner} per owner)
Every session key expires after `idle_ttl_s` without use; index entries of expired sessions are
dropped when listed. Changes that read before they write are atomic: the metadata's under
WATCH, replacing a turn and what followed it in one Lua script. The reply in flight is a lease
of its own (app/leases/redis.py), not a session key.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import WatchError

from app.errors import MessageNotFound, SessionNotFound
from app.sessions.models import Message, Session, SessionChanges, summary_of

PREFIX = "sc:"

# KEYS: meta, order, msgs. ARGV: the TTL in ms, the first message to remove, then the new
# messages' id and JSON, in turn. -1: no such session; 0: no such message; 1: replaced.
REPLACE_FROM = """
if redis.call('exists', KEYS[1]) == 0 then return -1 end
local at = redis.call('lpos', KEYS[2], ARGV[2])
if not at then return 0 end
for _, id in ipairs(redis.call('lrange', KEYS[2], at, -1)) do
  redis.call('hdel', KEYS[3], id)
end
if at == 0 then redis.call('del', KEYS[2]) else redis.call('ltrim', KEYS[2], 0, at - 1) end
for i = 3, #ARGV, 2 do
  redis.call('hset', KEYS[3], ARGV[i], ARGV[i + 1])
  redis.call('rpush', KEYS[2], ARGV[i])
end
for i = 1, 3 do redis.call('pexpire', KEYS[i], ARGV[1]) end
return 1
"""


class RedisSessionStore:
    def __init__(self, redis: Redis, *, idle_ttl_s: float = 24 * 3600.0,
                 max_list: int = 1000) -> None:
        # redis-py's type hints cover sync and async clients at once; treat replies as Any.
        self.redis: Any = redis
        self.ttl_ms = int(idle_ttl_s * 1000)
        self.max_list = max_list
        self._replace_from = redis.register_script(REPLACE_FROM)

    @staticmethod
    def _keys(sid: str) -> tuple[str, str, str]:
        base = f"{PREFIX}s:{sid}"
        return base, base + ":order", base + ":msgs"

    async def create(self, session: Session) -> None:
        meta, _order, _msgs = self._keys(session.id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(meta, orjson.dumps(session.meta()), px=self.ttl_ms)
            pipe.zadd(PREFIX + "index", {session.id: session.created})
            if session.owner is not None:
                pipe.zadd(f"{PREFIX}owner:{session.owner}", {session.id: session.created})
            await pipe.execute()
        if session.messages:
            await self.append(session.id, session.messages)

    async def get(self, session_id: str) -> Session | None:
        meta, order, msgs = self._keys(session_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(meta)
            pipe.lrange(order, 0, -1)
            pipe.hgetall(msgs)
            for key in (meta, order, msgs):
                pipe.pexpire(key, self.ttl_ms)
            raw, ids, by_id, *_ = await pipe.execute()
        if raw is None:
            return None
        messages = [Message.from_dict(orjson.loads(by_id[mid])) for mid in ids if mid in by_id]
        return Session.from_meta(orjson.loads(raw), messages)

    async def summaries(self, owner: str | None = None) -> list[dict[str, Any]]:
        index = PREFIX + "index" if owner is None else f"{PREFIX}owner:{owner}"
        ids = [i.decode() for i in await self.redis.zrevrange(index, 0, self.max_list - 1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in ids:
                meta, order, _ = self._keys(sid)
                pipe.get(meta)
                pipe.llen(order)
            replies = await pipe.execute()
        summaries: list[dict[str, Any]] = []
        gone: list[str] = []
        for i, sid in enumerate(ids):
            raw, count = replies[2 * i], replies[2 * i + 1]
            if raw is None:
                gone.append(sid)
                continue
            summaries.append(summary_of(orjson.loads(raw), int(count)))
        if gone:
            await self.redis.zrem(index, *gone)
            if owner is not None:
                await self.redis.zrem(PREFIX + "index", *gone)
        return summaries

    async def delete(self, session_id: str) -> bool:
        meta, order, msgs = self._keys(session_id)
        raw = await self.redis.get(meta)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(meta, order, msgs)
            pipe.zrem(PREFIX + "index", session_id)
            if raw is not None and (owner := orjson.loads(raw).get("owner")):
                pipe.zrem(f"{PREFIX}owner:{owner}", session_id)
            removed, *_ = await pipe.execute()
        return bool(removed)

    async def append(self, session_id: str, messages: list[Message]) -> None:
        meta, order, msgs = self._keys(session_id)
        if not await self.redis.exists(meta):
            raise SessionNotFound(f"session {session_id} not found")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(msgs, mapping={m.id: orjson.dumps(m.to_dict()) for m in messages})
            pipe.rpush(order, *[m.id for m in messages])
            for key in (meta, order, msgs):
                pipe.pexpire(key, self.ttl_ms)
            await pipe.execute()

    async def update_meta(self, session_id: str, changes: SessionChanges) -> bool:
        meta, order, msgs = self._keys(session_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    # Read, change and write back under WATCH: a change made meanwhile (or the
                    # session deleted) retries, so no other key's change is lost.
                    await pipe.watch(meta)
                    raw = await pipe.get(meta)
                    if raw is None:
                        return False
                    session = Session.from_meta(orjson.loads(raw), [])
                    session.change(changes)
                    pipe.multi()
                    pipe.set(meta, orjson.dumps(session.meta()), px=self.ttl_ms)
                    for key in (order, msgs):
                        pipe.pexpire(key, self.ttl_ms)
                    await pipe.execute()
                    return True
                except WatchError:
                    continue

    async def replace_from(self, session_id: str, message_id: str,
                           messages: list[Message]) -> None:
        keys = self._keys(session_id)
        args: list[Any] = [self.ttl_ms, message_id]
        for m in messages:
            args += [m.id, orjson.dumps(m.to_dict())]
        done = await self._replace_from(keys=list(keys), args=args)
        if done == -1:
            raise SessionNotFound(f"session {session_id} not found")
        if done == 0:
            raise MessageNotFound(f"message {message_id} not found in session {session_id}",
                                  param="replaces")

    async def update_message(self, session_id: str, message: Message) -> None:
        _meta, _, msgs = self._keys(session_id)
        # Only if the message still exists: a deleted session stays deleted.
        if await self.redis.hexists(msgs, message.id):
            await self.redis.hset(msgs, message.id, orjson.dumps(message.to_dict()))

    async def count(self) -> int:
        return int(await self.redis.zcard(PREFIX + "index"))

    async def close(self) -> None:
        await self.redis.aclose()
