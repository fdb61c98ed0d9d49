"""Records kept with the sessions, by kind and id: JSON objects that live as long as an idle
session does (the Responses API's stored responses and the conversations they chain). In
memory (bounded, least recently used evicted first) or in the sessions' Redis (`sc:r:{kind}:
{id}`, expiring with the sessions' idle TTL), so every replica finds them."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Protocol

import orjson

from app.sessions.redis import PREFIX

Record = dict[str, Any]


class Records(Protocol):
    async def put(self, kind: str, record_id: str, record: Record) -> None: ...

    async def get(self, kind: str, record_id: str) -> Record | None:
        """The record, or None when unknown or expired."""
        ...

    async def delete(self, kind: str, record_id: str) -> bool: ...


class MemoryRecords:
    def __init__(self, max_records: int = 10_000, idle_ttl_s: float = 24 * 3600.0) -> None:
        self.max_records = max_records
        self.idle_ttl_s = idle_ttl_s
        # (kind, id) -> (JSON, last used); most recently used last. Stored encoded: a caller
        # changing what it put or got never changes the record.
        self._records: OrderedDict[tuple[str, str], tuple[bytes, float]] = OrderedDict()

    async def put(self, kind: str, record_id: str, record: Record) -> None:
        self._records[(kind, record_id)] = (orjson.dumps(record), time.monotonic())
        self._records.move_to_end((kind, record_id))
        while len(self._records) > self.max_records:
            self._records.popitem(last=False)

    async def get(self, kind: str, record_id: str) -> Record | None:
        entry = self._records.get((kind, record_id))
        if entry is None:
            return None
        now = time.monotonic()
        if now - entry[1] > self.idle_ttl_s:
            del self._records[(kind, record_id)]
            return None
        self._records[(kind, record_id)] = (entry[0], now)
        self._records.move_to_end((kind, record_id))
        record: Record = orjson.loads(entry[0])
        return record

    async def delete(self, kind: str, record_id: str) -> bool:
        return self._records.pop((kind, record_id), None) is not None


class RedisRecords:
    def __init__(self, redis: Any, *, idle_ttl_s: float = 24 * 3600.0) -> None:
        self.redis = redis
        self.ttl_ms = int(idle_ttl_s * 1000)

    @staticmethod
    def _key(kind: str, record_id: str) -> str:
        return f"{PREFIX}r:{kind}:{record_id}"

    async def put(self, kind: str, record_id: str, record: Record) -> None:
        await self.redis.set(self._key(kind, record_id), orjson.dumps(record), px=self.ttl_ms)

    async def get(self, kind: str, record_id: str) -> Record | None:
        raw = await self.redis.getex(self._key(kind, record_id), px=self.ttl_ms)
        if raw is None:
            return None
        record: Record = orjson.loads(raw)
        return record

    async def delete(self, kind: str, record_id: str) -> bool:
        return bool(await self.redis.delete(self._key(kind, record_id)))
