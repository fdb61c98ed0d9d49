"""Leases in Redis, shared by every replica: `sc:lease:{kind}:{id}` holds the holder, with a
PX expiry its replica's keeper extends; a replica that dies stops extending it and it runs out
by itself. Taking, extending and letting go compare the holder in one Lua script each, so a
replica never extends or deletes a lease another one holds now. Cancel requests travel on the
pub/sub channel `sc:lease:cancel` (JSON `[kind, id, holder]`): fire and forget, heard by the
replicas listening at that moment."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson
from redis.asyncio import Redis

from app.leases.store import CancelRequest

PREFIX = "sc:lease:"
CANCEL_CHANNEL = PREFIX + "cancel"

# KEYS: the lease. ARGV: holder, TTL in ms. nil: taken; else who holds it.
ACQUIRE = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('get', KEYS[1])
"""
# KEYS: the lease. ARGV: holder, TTL in ms. 1: extended, or taken back (it ran out while Redis
# was away, and nobody took it); 0: another holder's.
REFRESH = """
local current = redis.call('get', KEYS[1])
if current == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
if not current then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""
# KEYS: the lease. ARGV: holder.
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def lease_key(kind: str, lease_id: str) -> str:
    return f"{PREFIX}{kind}:{lease_id}"


class RedisLeaseStore:
    def __init__(self, redis: Redis) -> None:
        # redis-py's type hints cover sync and async clients at once; treat replies as Any.
        self.redis: Any = redis
        self._acquire = redis.register_script(ACQUIRE)
        self._refresh = redis.register_script(REFRESH)
        self._release = redis.register_script(RELEASE)

    async def acquire(self, kind: str, lease_id: str, holder: str, ttl_s: float) -> str | None:
        current = await self._acquire(keys=[lease_key(kind, lease_id)], args=[holder, _ms(ttl_s)])
        return None if current is None else _text(current)

    async def refresh(self, kind: str, lease_id: str, holder: str, ttl_s: float) -> bool:
        return bool(await self._refresh(keys=[lease_key(kind, lease_id)],
                                        args=[holder, _ms(ttl_s)]))

    async def release(self, kind: str, lease_id: str, holder: str) -> None:
        await self._release(keys=[lease_key(kind, lease_id)], args=[holder])

    async def holder(self, kind: str, lease_id: str) -> str | None:
        current = await self.redis.get(lease_key(kind, lease_id))
        return None if current is None else _text(current)

    async def request_cancel(self, request: CancelRequest) -> None:
        await self.redis.publish(CANCEL_CHANNEL, orjson.dumps(list(request)))

    async def cancel_requests(self) -> AsyncGenerator[CancelRequest, None]:
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(CANCEL_CHANNEL)
        except BaseException:
            await pubsub.aclose()
            raise

        async def requests() -> AsyncGenerator[CancelRequest, None]:
            try:
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        yield CancelRequest(*orjson.loads(message["data"]))
            finally:
                await pubsub.aclose()

        return requests()


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
