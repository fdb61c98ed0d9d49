"""Records in memory: bounded, least recently used evicted first, expiring after an idle TTL
(the sessions' own), for a single replica."""

from __future__ import annotations

import time
from collections import OrderedDict

import orjson

from app.kept_json import kept_json
from app.records.types import Record


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
