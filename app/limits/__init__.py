"""Per-key rate limits (the core: no HTTP). `KeyLimits` holds the rules; the token buckets
under it live in memory (one replica) or in Redis (shared by every replica)."""

from app.limits.buckets import MemoryBuckets, RedisBuckets, TokenBuckets
from app.limits.keys import KeyLimits

__all__ = ["KeyLimits", "MemoryBuckets", "RedisBuckets", "TokenBuckets"]
