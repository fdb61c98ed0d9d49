"""Records, by kind and id: JSON objects for what is neither a session nor a reply log: the
Responses API's stored responses and the conversations they chain, fine-tuning jobs (their
events as the record's items) and uploaded files' metadata. In memory (`memory.py`: bounded,
least recently used evicted first), in Redis (`redis.py`, shared by every replica) or on disk
(`disk.py`, for a memory-mode service whose records must outlive the process).

A record may also have items, an append-only list (a fine-tuning job's events), which go with
it; `all` gives every record of a kind (listings)."""

from __future__ import annotations

from app.records.disk import DiskRecords
from app.records.memory import MemoryRecords
from app.records.redis import RedisRecords
from app.records.types import Record, Records

__all__ = ["DiskRecords", "MemoryRecords", "Record", "Records", "RedisRecords"]
