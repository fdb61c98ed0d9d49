"""Records kept with the sessions, by kind and id: JSON objects that live as long as an idle
session does (the Responses API's stored responses and the conversations they chain). In
memory (bounded, least recently used evicted first) or in the sessions' Redis (`sc:r:{kind}:
{id}`, expiring with the sessions' idle TTL), so every replica finds them.

A record may also have items, an append-only list (a fine-tuning job's events), which go with
it; `all` gives every record of a kind (listings). On disk, for a memory-mode service whose
records must outlive the process: `disk_records.py`."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Protocol

import orjson

from app.kept_json import kept_json
from app.sessions.redis import PREFIX

Record = dict[str, Any]


class Records(Protocol):
    async def put(self, kind: str, record_id: str, record: Record) -> None: ...

    async def get(self, kind: str, record_id: str) -> Record | None:
        """The record, or None when unknown or expired."""
        ...

    async def delete(self, kind: str, record_id: str) -> bool: ...

    async def all(self, kind: str) -> list[Record]:
        """Every live record of `kind`, in no particular order."""
        ...

    async def append(self, kind: str, record_id: str, item: Record) -> int:
        """Adds `item` to the record's items; returns how many it has now."""
        ...

    async def items(self, kind: str, record_id: str, start: int = 0) -> list[Record]:
        """The record's items from index `start` on, oldest first."""
        ...


class MemoryRecords:
    def __init__(self, max_records: int = 10_000, idle_ttl_s: float = 24 * 3600.0) -> None:
        self.max_records = max_records
        self.idle_ttl_s = idle_ttl_s
        # (kind, id) -> (JSON, last used); most recently used last. Stored encoded: a caller
        # changing what it put or got never changes the record. Trimmed (app/kept_json.py):
        # orjson's own buffers are 4 KB and more (65 KB for 5 KB of JSON), held as long as the
        # record.
        self._records: OrderedDict[tuple[str, str], tuple[bytes, float]] = OrderedDict()
        self._items: dict[tuple[str, str], list[bytes]] = {}

    async def put(self, kind: str, record_id: str, record: Record) -> None:
        self._records[(kind, record_id)] = (kept_json(record), time.monotonic())
        self._records.move_to_end((kind, record_id))
        while len(self._records) > self.max_records:
            key, _ = self._records.popitem(last=False)
            self._items.pop(key, None)

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
        self._items.pop((kind, record_id), None)
        return self._records.pop((kind, record_id), None) is not None

    async def all(self, kind: str) -> list[Record]:
        now = time.monotonic()
        return [orjson.loads(raw) for (k, _), (raw, used) in self._records.items()
                if k == kind and now - used <= self.idle_ttl_s]

    async def append(self, kind: str, record_id: str, item: Record) -> int:
        items = self._items.setdefault((kind, record_id), [])
        items.append(kept_json(item))
        return len(items)

    async def items(self, kind: str, record_id: str, start: int = 0) -> list[Record]:
        return [orjson.loads(raw) for raw in self._items.get((kind, record_id), [])[start:]]


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
