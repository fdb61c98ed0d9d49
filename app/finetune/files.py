"""Uploaded training files: OpenAI's file object as a record (kind `file`) beside the jobs,
the bytes under `{cache_dir}/files/{id}.jsonl`. With Redis the bytes are also in Redis
(`sc:file:{id}`, zlib level 1: 10 MB of chat JSONL took 3.1 MB and 0.09 s), so that a job on any
replica trains on them: its replica writes them out on first use (`local`). They stay there
until the file is deleted: STREAMCHAT_MAX_UPLOAD_BYTES bounds each one. Only
`purpose=fine-tune` is taken, and only a file whose every line is a valid chat example
(`dataset.py`)."""

from __future__ import annotations

import asyncio
import os
import time
import zlib
from pathlib import Path
from typing import Any

from app.errors import BodyTooLarge, InvalidRequest, NotFound
from app.finetune import dataset
from app.ids import new_id
from app.ownership import visible
from app.records import Record, Records

KIND = "file"
PURPOSES = ("fine-tune",)


class FileStore:
    def __init__(self, records: Records, folder: Path, max_bytes: int,
                 redis: Any | None = None) -> None:
        self.records = records
        self.folder = folder  # this replica's copies
        self.max_bytes = max_bytes
        self.redis = redis  # where every replica reads the bytes; None: the folder alone

    async def create(self, filename: str, purpose: str, raw: bytes,
                     owner: str | None) -> dict[str, Any]:
        """Checks and stores an upload; its file object."""
        if purpose not in PURPOSES:
            raise InvalidRequest(f"'purpose' must be one of {', '.join(PURPOSES)}, got "
                                 f"{purpose!r}", param="purpose")
        if len(raw) > self.max_bytes:
            raise BodyTooLarge(f"the file is larger than {self.max_bytes} bytes "
                               "(STREAMCHAT_MAX_UPLOAD_BYTES)", param="file")
        # A 50 MB file takes a while to check: off the event loop.
        await asyncio.to_thread(dataset.examples, raw)
        file: dict[str, Any] = {"id": new_id("file-"), "object": "file", "bytes": len(raw),
                "created_at": int(time.time()), "filename": filename or "upload.jsonl",
                "purpose": purpose, "status": "processed", "expires_at": None,
                "status_details": None}
        if self.redis is not None:
            await self.redis.set(_key(file["id"]), await asyncio.to_thread(zlib.compress, raw, 1))
        await asyncio.to_thread(self._write, self.path(file["id"]), raw)
        await self.records.put(KIND, file["id"], {"file": file, "owner": owner})
        return file

    @staticmethod
    def _write(path: Path, raw: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_suffix(f".{os.getpid()}.partial")  # replicas may share the folder
        staging.write_bytes(raw)
        staging.replace(path)

    def path(self, file_id: str) -> Path:
        return self.folder / f"{file_id}.jsonl"

    async def local(self, file_id: str) -> Path | None:
        """The file's bytes on this replica's disk (written out of Redis on first use); None
        once the file is deleted."""
        if await self.records.get(KIND, file_id) is None:
            return None
        path = self.path(file_id)
        if path.is_file():
            return path
        packed = None if self.redis is None else await self.redis.get(_key(file_id))
        if packed is None:
            return None
        raw = await asyncio.to_thread(zlib.decompress, packed)
        await asyncio.to_thread(self._write, path, raw)
        return path

    async def get(self, file_id: str, owner: str | None, param: str = "file_id") -> dict[str, Any]:
        """The file object; another key's file is as if it did not exist."""
        record = await self._record(file_id, owner)
        if record is None:
            raise NotFound(f"file {file_id} not found (unknown, deleted, or not yours)",
                           param=param, code="file_not_found")
        file: dict[str, Any] = record["file"]
        return file

    async def exists(self, file_id: str, owner: str | None) -> bool:
        return await self._record(file_id, owner) is not None

    async def all(self, owner: str | None, purpose: str | None = None) -> list[dict[str, Any]]:
        """The files, newest first."""
        files = [r["file"] for r in await self.records.all(KIND)
                 if (owner is None or r.get("owner") == owner)
                 and (purpose is None or r["file"]["purpose"] == purpose)]
        return sorted(files, key=lambda f: (f["created_at"], f["id"]), reverse=True)

    async def delete(self, file_id: str, owner: str | None) -> None:
        await self.get(file_id, owner)
        await self.records.delete(KIND, file_id)
        if self.redis is not None:
            await self.redis.delete(_key(file_id))
        self.path(file_id).unlink(missing_ok=True)  # other replicas' copies: `local` ignores them

    async def _record(self, file_id: str, owner: str | None) -> Record | None:
        record = await self.records.get(KIND, file_id)
        if record is None or not visible(record.get("owner"), owner):
            return None
        return record


def _key(file_id: str) -> str:
    return f"sc:file:{file_id}"
