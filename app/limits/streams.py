"""How many generations each key runs at once: on this replica (memory), or on every replica
(Redis), each generation's count kept alive by the replica running it.

In memory, a count per key of this process. In Redis, `sc:streams:{owner}` is a sorted set of
the key's generations, one member `{replica}:{n}` each, scored by the Redis time (ms) it stops
counting at. One Lua script drops the expired members, counts the rest and adds the new one
only under the cap: atomic across replicas. Each replica refreshes its own members every
`LEASE_S / 3` (one script call for all of them), so a dead replica's generations stop counting
`LEASE_S` (15 s) after it died, as its leases run out (app/leases/). A generation that ends is
removed at once. Measured against a local Redis on a busy 2-core machine: a start and its end
0.65 ms (two round trips), a refusal at a cap held by another replica 0.11 ms, one refresh of
1,000 generations of 100 keys 2.8 ms (every 5 s); a refusal at the cap here asks nothing.

Redis unreachable (StoreUnavailable): the count fails open as the rate limits do
(buckets.py). It is logged once, and each replica holds each key to the cap by its own count
(every backend keeps one: it is also what refuses at the cap with no round trip). What
started meanwhile is added by the first refresh that reaches Redis, as is what another
replica dropped as expired while this one could not refresh it: they do run.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from typing import TYPE_CHECKING, Any, Protocol

from app.errors import StoreUnavailable
from app.leases import LEASE_S

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("streamchat.limits")

PREFIX = "sc:streams:"
RETRY_S = 1.0  # after a refresh that failed: Redis back, this replica's count is within 1 s


class StreamCounts(Protocol):
    def here(self, owner: str) -> int:
        """`owner`'s generations running on this replica."""
        ...

    async def start(self, owner: str, cap: int) -> bool:
        """Count a generation of `owner`'s if fewer than `cap` run (True); else count nothing."""
        ...

    def end(self, owner: str) -> asyncio.Future[None]:
        """Uncount one of `owner`'s generations here, at once (before any await, so that a
        cancelled caller gives it back too). The future is done once every replica sees it
        ended, or once it is known they cannot be told (then its count runs out by itself);
        cancelling it stops nothing."""
        ...

    async def close(self) -> None:
        ...


def _done() -> asyncio.Future[None]:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return done


class MemoryStreams:
    """The counts of one process. Bounded: a key at 0 is forgotten."""

    def __init__(self) -> None:
        self._running: dict[str, int] = {}

    def here(self, owner: str) -> int:
        return self._running.get(owner, 0)

    async def start(self, owner: str, cap: int) -> bool:  # no await: atomic on the event loop
        if self.here(owner) >= cap:
            return False
        self._running[owner] = self.here(owner) + 1
        return True

    def end(self, owner: str) -> asyncio.Future[None]:
        running = self.here(owner) - 1
        if running > 0:
            self._running[owner] = running
        else:
            self._running.pop(owner, None)
        return _done()

    async def close(self) -> None:
        pass


# KEYS: the owner's set. ARGV: the cap, the TTL (ms), the new member. 1: counted; 0: at the cap.
_START = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: the owners' sets. ARGV: the TTL (ms), then for each key its number of members and those
# members. Every member is (re)added: each names a generation that runs on this replica.
_REFRESH = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local ttl = tonumber(ARGV[1])
local at = 2
for _, key in ipairs(KEYS) do
  local count = tonumber(ARGV[at])
  for i = at + 1, at + count do redis.call('ZADD', key, now + ttl, ARGV[i]) end
  redis.call('PEXPIRE', key, ttl)
  at = at + count + 1
end
return #KEYS
"""


class RedisStreams:
    """Counts every replica shares (the module's docstring says how). `here` is this replica's
    own members by key, which it refreshes; `ttl_s` is injectable so tests need not wait 15 s."""

    def __init__(self, redis: Redis, *, ttl_s: float = LEASE_S, prefix: str = PREFIX,
                 replica: str | None = None) -> None:
        # redis-py's type hints cover sync and async clients at once; treat replies as Any.
        self.redis: Any = redis
        self.ttl_s = ttl_s
        self.prefix = prefix
        self.replica = replica or secrets.token_hex(6)
        self._start = self.redis.register_script(_START)
        self._refresh = self.redis.register_script(_REFRESH)
        self._ids = itertools.count(1)
        self._here: dict[str, set[str]] = {}  # owner -> its members running here
        self._keeper: asyncio.Task[None] | None = None
        self._round: asyncio.Task[bool] | None = None  # the refresh in flight
        self._removals: set[asyncio.Task[None]] = set()  # held until done
        self._away = False  # Redis unreachable: said once, until a call reaches it again

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl_s * 1000))

    def here(self, owner: str) -> int:
        return len(self._here.get(owner, ()))

    async def start(self, owner: str, cap: int) -> bool:
        if self.here(owner) >= cap:  # at the cap here: at the cap everywhere, no round trip
            return False
        member = f"{self.replica}:{next(self._ids)}"
        try:
            counted = bool(await self._start(keys=[self.prefix + owner],
                                             args=[cap, self._ttl_ms, member]))
            self._reached()
        except StoreUnavailable as exc:
            self._unreachable(exc)
            counted = True  # fail open: this replica's own count, below, decides
        except BaseException:  # cancelled mid-call: Redis may have counted it
            self._remove(owner, member)
            raise
        if not counted:
            return False
        if self.here(owner) >= cap:  # others started here while Redis answered (or failed)
            self._remove(owner, member)
            return False
        self._here.setdefault(owner, set()).add(member)
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.create_task(self._keep(), name="stream-counts")
        return True

    def end(self, owner: str) -> asyncio.Future[None]:
        members = self._here.get(owner)
        if not members:
            return _done()  # nothing counted here: an end with no start
        member = members.pop()
        if not members:
            del self._here[owner]
        return asyncio.shield(self._remove(owner, member))

    async def close(self) -> None:
        """Stop refreshing (shutdown, once the generations run here have ended); removals
        still under way finish first."""
        if self._removals:
            await asyncio.gather(*self._removals, return_exceptions=True)
        tasks = [t for t in (self._keeper, self._round) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _remove(self, owner: str, member: str) -> asyncio.Task[None]:
        task = asyncio.create_task(self._removed(owner, member), name="stream-count-end")
        self._removals.add(task)
        task.add_done_callback(self._removals.discard)
        return task

    async def _removed(self, owner: str, member: str) -> None:
        # A refresh in flight may have read this member before it ended, and would add it back
        # after a removal that overtook it: remove it once that refresh is done.
        if self._round is not None and not self._round.done():
            await asyncio.wait([self._round])
        try:
            await self.redis.zrem(self.prefix + owner, member)
            self._reached()
        except StoreUnavailable as exc:  # it runs out by itself: refreshed no more
            self._unreachable(exc)

    async def _keep(self) -> None:
        refreshed = True
        while self._here:
            await asyncio.sleep(self.ttl_s / 3 if refreshed else min(RETRY_S, self.ttl_s / 3))
            self._round = asyncio.create_task(self._refresh_here(), name="stream-counts-refresh")
            refreshed = await self._round

    async def _refresh_here(self) -> bool:
        here = {owner: list(members) for owner, members in self._here.items()}  # before any await
        if not here:
            return True
        args: list[Any] = [self._ttl_ms]
        for members in here.values():
            args += [len(members), *members]
        try:
            await self._refresh(keys=[self.prefix + owner for owner in here], args=args)
        except StoreUnavailable as exc:
            self._unreachable(exc)
            return False
        except Exception:
            log.exception("refreshing the stream counts failed; retrying in %.0f s", RETRY_S)
            return False
        self._reached()
        return True

    def _unreachable(self, exc: StoreUnavailable) -> None:
        if not self._away:
            self._away = True
            log.warning("streams are counted on each replica alone until Redis answers again "
                        "(%s): a key may run max_streams_per_key on each", exc.message)

    def _reached(self) -> None:
        if self._away:
            self._away = False
            log.info("streams are counted across replicas again")
