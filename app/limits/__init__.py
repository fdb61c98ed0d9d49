"""Per-key rate limits (the core: no HTTP). `KeyLimits` holds the rules; the token buckets and
stream counts under it live in memory (one replica) or in Redis (shared by every replica)."""

from app.limits.buckets import MemoryBuckets, RedisBuckets, TokenBuckets
from app.limits.keys import KeyLimits
from app.limits.streams import MemoryStreams, RedisStreams, StreamCounts

__all__ = ["KeyLimits", "MemoryBuckets", "MemoryStreams", "RedisBuckets", "RedisStreams",
           "StreamCounts", "TokenBuckets"]
