"""Records on disk (the protocol of `app/records/`), for a memory-mode service whose records must
outlive the process: fine-tuning jobs, their events and uploaded files' metadata. One JSON file
a record (`{folder}/{kind}/{id}.json`, written to a temporary name and renamed, so a crash
never leaves half a record) and one JSONL file of its items beside it (appended a line at a
time: a crash loses at most the line being written, which `items` skips). Never expire.

Small and infrequent writes (a job writes one event per training step, seconds apart), done
inline: a few hundred microseconds each on a local disk, not worth a thread."""

from __future__ import annotations

import os
import re
from pathlib import Path

import orjson

from app.records.types import Record

_SAFE = re.compile(r"[A-Za-z0-9_.:-]{1,200}")  # ids and kinds become file names


class DiskRecords:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._counts: dict[tuple[str, str], int] = {}  # items per record, read once

    def _path(self, kind: str, record_id: str, suffix: str = ".json") -> Path:
        if not _SAFE.fullmatch(kind) or not _SAFE.fullmatch(record_id) or record_id[0] == ".":
            raise ValueError(f"not a record name: {kind}/{record_id}")
        return self.folder / kind / (record_id + suffix)

    async def put(self, kind: str, record_id: str, record: Record) -> None:
        path = self._path(kind, record_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_suffix(".json.partial")
        staging.write_bytes(orjson.dumps(record))
        os.replace(staging, path)

    async def get(self, kind: str, record_id: str) -> Record | None:
        try:
            path = self._path(kind, record_id)
        except ValueError:
            return None  # no record could have this name
        try:
            record: Record = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        return record

    async def delete(self, kind: str, record_id: str) -> bool:
        try:
            path = self._path(kind, record_id)
        except ValueError:
            return False
        path.with_suffix(".jsonl").unlink(missing_ok=True)
        self._counts.pop((kind, record_id), None)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    async def all(self, kind: str) -> list[Record]:
        records = []
        for path in sorted((self.folder / kind).glob("*.json")):
            try:
                records.append(orjson.loads(path.read_bytes()))
            except (FileNotFoundError, orjson.JSONDecodeError):
                continue  # deleted meanwhile
        return records

    async def append(self, kind: str, record_id: str, item: Record) -> int:
        path = self._path(kind, record_id, ".jsonl")
        path.parent.mkdir(parents=True, exist_ok=True)
        key = (kind, record_id)
        if key not in self._counts:
            self._counts[key] = len(await self.items(kind, record_id))
        with path.open("ab") as out:
            out.write(orjson.dumps(item) + b"\n")
        self._counts[key] += 1
        return self._counts[key]

    async def items(self, kind: str, record_id: str, start: int = 0) -> list[Record]:
        try:
            raw = self._path(kind, record_id, ".jsonl").read_bytes()
        except (FileNotFoundError, ValueError):
            return []
        items = []
        for line in raw.split(b"\n"):
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue  # blank, or the line a crash cut short
        return items[start:]
