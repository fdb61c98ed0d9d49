"""Token buckets by key: in memory (one replica) or in Redis (shared by every replica).

A bucket holds up to `per_minute` tokens and refills at `per_minute / 60` a second: a key may
burst a full minute's worth, then keeps to the steady rate. `take` spends only what the bucket
holds (a request); `charge` spends unconditionally, even below zero (generated tokens, known
only afterwards), so a key that overspent waits until its bucket refills past zero.

A missing bucket reads as full. That is what keeps both backends bounded: memory forgets
buckets that are full again (or the least recently used past a cap), Redis lets a key expire
once it would be full again.

An unreachable bucket reads as full too (Redis away: StoreUnavailable): the limits fail open.
They share fairness between keys; they guard nothing that breaks without them. Failing closed
would turn a Redis outage into a 503 on every request with a key, stateless completions
included, which need no Redis at all. Meanwhile each key is still held to its
max_streams_per_key on each replica (each counting alone, streams.py) and the engine to its
admission queue; what a key spends during the outage is not charged.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from app.errors import StoreUnavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis

PREFIX = "sc:rl:"


class TokenBuckets(Protocol):
    async def take(self, key: str, cost: float, per_minute: float) -> float:
        """Take `cost` if the bucket holds it and return 0.0; otherwise take nothing and return
        the seconds until it would hold `cost` (the Retry-After)."""
        ...

    async def charge(self, key: str, cost: float, per_minute: float) -> None:
        """Take `cost` unconditionally, even below zero."""
        ...

    async def level(self, key: str, per_minute: float) -> float:
        """The tokens the bucket holds now (negative after an overspend)."""
        ...


def _check(cost: float, per_minute: float) -> None:
    if per_minute <= 0:
        raise ValueError(f"per_minute must be positive, got {per_minute}")
    if cost < 0:
        raise ValueError(f"cost must not be negative, got {cost}")


def _check_take(cost: float, per_minute: float) -> None:
    _check(cost, per_minute)
    # A bucket never holds more than per_minute, so such a take could never succeed.
    if cost > per_minute:
        raise ValueError(f"a bucket of {per_minute} a minute never holds {cost}")


@dataclass(slots=True)
class _Bucket:
    level: float
    stamp: float  # clock reading when `level` was stored
    per_minute: float

    def now(self, now: float, per_minute: float) -> float:
        return min(per_minute, self.level + (now - self.stamp) * per_minute / 60.0)


class MemoryBuckets:
    """Buckets of one process. Bounded: a bucket that has refilled to full is forgotten (it
    reads the same as a missing one), and past `max_keys` the least recently used go first,
    which at worst forgives a key some spending; bounded memory under any number of keys
    matters more. The clock is injectable so tests need not sleep."""

    def __init__(self, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.max_keys = max_keys
        self._clock = clock
        # key -> bucket; least recently spent from first.
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: str, per_minute: float, now: float) -> float:
        bucket = self._buckets.get(key)
        return per_minute if bucket is None else bucket.now(now, per_minute)

    def _store(self, key: str, level: float, now: float, per_minute: float) -> None:
        self._buckets.pop(key, None)
        self._buckets[key] = _Bucket(level, now, per_minute)
        # Sweep from the least recently spent: stop at the first bucket still worth keeping,
        # so each call does work in proportion to what it frees.
        while len(self._buckets) > 1:
            oldest_key, oldest = next(iter(self._buckets.items()))
            full = oldest.now(now, oldest.per_minute) >= oldest.per_minute
            if not full and len(self._buckets) <= self.max_keys:
                break
            del self._buckets[oldest_key]

    # No await inside these: each runs whole, so they are atomic on the event loop.
    async def take(self, key: str, cost: float, per_minute: float) -> float:
        _check_take(cost, per_minute)
        now = self._clock()
        level = self._level(key, per_minute, now)
        if level >= cost:
            self._store(key, level - cost, now, per_minute)
            return 0.0
        return (cost - level) * 60.0 / per_minute

    async def charge(self, key: str, cost: float, per_minute: float) -> None:
        _check(cost, per_minute)
        now = self._clock()
        self._store(key, self._level(key, per_minute, now) - cost, now, per_minute)

    async def level(self, key: str, per_minute: float) -> float:
        _check(0.0, per_minute)
        return self._level(key, per_minute, self._clock())


# Shared by the scripts: the bucket's level now, from Redis's own clock (replicas' clocks may
# differ). Time is kept in integer microseconds, exact in a Lua double. Numbers go to
# redis.call as numbers (Redis prints them with full precision); tostring() would keep only
# 14 digits, enough for the replies.
_REFILL = """
local cap = tonumber(ARGV[1])
local rate = cap / 60000000
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local level = cap
local saved = redis.call('HMGET', KEYS[1], 'level', 'at')
if saved[1] then
  level = math.min(cap, tonumber(saved[1]) + (now - tonumber(saved[2])) * rate)
end
local function save(new_level)
  redis.call('HSET', KEYS[1], 'level', new_level, 'at', now)
  -- Expire about when it would be full again: a missing bucket reads as full.
  redis.call('PEXPIRE', KEYS[1], math.ceil((cap - new_level) / rate / 1000) + 1000)
end
"""

_TAKE = _REFILL + """
local cost = tonumber(ARGV[2])
if level >= cost then
  save(level - cost)
  return '0'
end
return tostring((cost - level) / rate / 1000000)
"""

_CHARGE = _REFILL + """
save(level - tonumber(ARGV[2]))
return tostring(level - tonumber(ARGV[2]))
"""

_LEVEL = _REFILL + """
return tostring(level)
"""


class RedisBuckets:
    """Buckets every replica shares: `sc:rl:{key}`, a hash of `level` and `at` (microseconds,
    Redis time). One Lua script per operation, so each is atomic across replicas."""

    def __init__(self, redis: Redis, *, prefix: str = PREFIX) -> None:
        # redis-py's type hints cover sync and async clients at once; treat replies as Any.
        self.redis: Any = redis
        self.prefix = prefix
        self._take = self.redis.register_script(_TAKE)
        self._charge = self.redis.register_script(_CHARGE)
        self._level = self.redis.register_script(_LEVEL)

    # Redis unreachable: each reads as a full bucket (the module's docstring says why).
    async def take(self, key: str, cost: float, per_minute: float) -> float:
        _check_take(cost, per_minute)
        try:
            return float(await self._take(keys=[self.prefix + key], args=[per_minute, cost]))
        except StoreUnavailable:
            return 0.0

    async def charge(self, key: str, cost: float, per_minute: float) -> None:
        _check(cost, per_minute)
        with contextlib.suppress(StoreUnavailable):
            await self._charge(keys=[self.prefix + key], args=[per_minute, cost])

    async def level(self, key: str, per_minute: float) -> float:
        _check(0.0, per_minute)
        try:
            return float(await self._level(keys=[self.prefix + key], args=[per_minute]))
        except StoreUnavailable:
            return per_minute
