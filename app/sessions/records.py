"""Moved to app/records/. Transitional: finetune/files.py, finetune/store.py and
api/http/state.py still import from here until their import lines change; then this goes."""

from __future__ import annotations

from app.records import MemoryRecords, Record, Records, RedisRecords

__all__ = ["MemoryRecords", "Record", "Records", "RedisRecords"]
