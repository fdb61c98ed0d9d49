"""Where a replica keeps what it shares: in memory (one replica), or in Redis, shared by every
replica (`STREAMCHAT_REDIS_URL`): sessions, reply logs, rate-limit buckets, stream counts,
records and leases.
With Redis, all of them call it through one client (app/redis_calls.py): every call bounded by
`STREAMCHAT_REDIS_TIMEOUT_S`, an unreachable Redis raised as StoreUnavailable, and its health
(app/store_health.py) watched while the replica runs (`start`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.leases import Leases, MemoryLeaseStore
from app.limits import MemoryBuckets, RedisBuckets, TokenBuckets
from app.limits.streams import MemoryStreams, RedisStreams, StreamCounts
from app.records import MemoryRecords, Records, RedisRecords
from app.sessions.memory import MemorySessionStore
from app.sessions.store import SessionStore
from app.settings import Settings
from app.store_health import StoreHealth
from app.streams import ReplyLogs
from app.streams.memory import MemoryReplyLogs


@dataclass
class Backends:
    store: SessionStore
    logs: ReplyLogs
    buckets: TokenBuckets
    records: Records
    leases: Leases  # which replica runs what (app/leases/): every user shares these
    health: StoreHealth | None = None  # Redis's, watched while the replica runs; memory: None
    # Each key's generations at once (app/limits/streams.py); memory's unless Redis's.
    streams: StreamCounts = field(default_factory=MemoryStreams)

    def start(self) -> None:
        """Watch the store's health (in the running loop)."""
        if self.health is not None:
            self.health.start()

    async def close(self) -> None:
        await self.streams.close()
        await self.leases.close()
        await self.logs.close()
        if self.health is not None:
            await self.health.close()
        await self.store.close()


def build_backends(settings: Settings) -> Backends:
    """What these settings ask for: memory, or Redis shared by every replica."""
    if settings.redis_url is None:
        return Backends(MemorySessionStore(settings.max_sessions, settings.session_ttl_s),
                        MemoryReplyLogs(), MemoryBuckets(),
                        MemoryRecords(settings.max_sessions, settings.session_ttl_s),
                        Leases(MemoryLeaseStore()))
    from app.leases.redis import RedisLeaseStore
    from app.redis_calls import connect
    from app.sessions.redis import RedisSessionStore
    from app.streams.redis import RedisReplyLogs

    redis = connect(settings.redis_url, timeout_s=settings.redis_timeout_s)
    leases = Leases(RedisLeaseStore(redis))

    async def is_live(kind: str, lease_id: str, holder: str) -> bool:
        return not await leases.gone(kind, lease_id, holder)

    return Backends(RedisSessionStore(redis, idle_ttl_s=settings.session_ttl_s),
                    RedisReplyLogs(redis, is_live, timeout_s=settings.redis_timeout_s),
                    RedisBuckets(redis),
                    RedisRecords(redis, idle_ttl_s=settings.session_ttl_s), leases,
                    redis.health, RedisStreams(redis))
