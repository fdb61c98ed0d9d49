"""Records in Redis, shared by every replica: `sc:r:{kind}:{id}` (the sessions' prefix, so
that records stored before keep their keys), expiring with the sessions' idle TTL unless
`idle_ttl_s` is None; a kind's ids indexed in a set (`sc:r:{kind}`) for `all`."""

from __future__ import annotations

from typing import Any

import orjson

from app.records.types import Record

PREFIX = "sc:"


class RedisRecords:
    """`idle_ttl_s` None: records that never expire (fine-tuning jobs, files), deleted only
    when asked. A kind's ids are indexed in a set (`sc:r:{kind}`) for `all`."""

    def __init__(self, redis: Any, *, idle_ttl_s: float | None = 24 * 3600.0) -> None:
        self.redis = redis
        self.ttl_ms = None if idle_ttl_s is None else int(idle_ttl_s * 1000)

    @staticmethod
    def _key(kind: str, record_id: str) -> str:
        return f"{PREFIX}r:{kind}:{record_id}"

    async def put(self, kind: str, record_id: str, record: Record) -> None:
        await self.redis.set(self._key(kind, record_id), orjson.dumps(record), px=self.ttl_ms)
        await self.redis.sadd(f"{PREFIX}r:{kind}", record_id)

    async def get(self, kind: str, record_id: str) -> Record | None:
        key = self._key(kind, record_id)
        raw = await (self.redis.get(key) if self.ttl_ms is None
                     else self.redis.getex(key, px=self.ttl_ms))
        if raw is None:
            return None
        record: Record = orjson.loads(raw)
        return record

    async def delete(self, kind: str, record_id: str) -> bool:
        await self.redis.srem(f"{PREFIX}r:{kind}", record_id)
        key = self._key(kind, record_id)
        existed = await self.redis.delete(key)
        await self.redis.delete(key + ":items")
        return bool(existed)

    async def all(self, kind: str) -> list[Record]:
        ids = sorted(i.decode() if isinstance(i, bytes) else i
                     for i in await self.redis.smembers(f"{PREFIX}r:{kind}"))
        if not ids:
            return []
        raws = await self.redis.mget([self._key(kind, i) for i in ids])
        gone = [i for i, raw in zip(ids, raws, strict=True) if raw is None]
        if gone:  # expired: drop them from the index
            await self.redis.srem(f"{PREFIX}r:{kind}", *gone)
        return [orjson.loads(raw) for raw in raws if raw is not None]

    async def append(self, kind: str, record_id: str, item: Record) -> int:
        key = self._key(kind, record_id) + ":items"
        count = int(await self.redis.rpush(key, orjson.dumps(item)))
        if self.ttl_ms is not None:
            await self.redis.pexpire(key, self.ttl_ms)
        return count

    async def items(self, kind: str, record_id: str, start: int = 0) -> list[Record]:
        raws = await self.redis.lrange(self._key(kind, record_id) + ":items", start, -1)
        return [orjson.loads(raw) for raw in raws]
