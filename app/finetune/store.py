"""Fine-tuning jobs and their events as records (kind `fine_tuning.job`, the events as the
record's items): on disk in memory mode, in Redis with the sessions otherwise, so both outlive
the process. Who may see a job (its owner), its listing pages, and the live follow of its
events are decided here; when a job changes is `manager.py`'s.

A job is never changed once it has ended (succeeded, failed, cancelled): a late step line or a
second cancel cannot undo its end. Its last event is appended before the final status is
stored, so a follower that sees the job ended has already been able to read every event."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from app.errors import InvalidRequest, NotFound
from app.finetune.job import FINAL
from app.ownership import visible
from app.records import Record, Records

KIND = "fine_tuning.job"
POLL_S = 2.0  # a job another replica runs: how often its follower looks for new events

Job = dict[str, Any]


class JobStore:
    def __init__(self, records: Records) -> None:
        self.records = records
        self._lock = asyncio.Lock()  # read-change-write of one record at a time
        self._changed: dict[str, asyncio.Event] = {}  # job id -> set at its next event

    async def create(self, job: Job, owner: str | None) -> None:
        await self.records.put(KIND, job["id"], {"job": job, "owner": owner})

    async def record(self, job_id: str, owner: str | None = None, *,
                     param: str = "fine_tuning_job_id") -> Record:
        """The job's record; another key's job is as if it did not exist."""
        record = await self.records.get(KIND, job_id)
        if record is None or not visible(record.get("owner"), owner):
            raise NotFound(f"fine-tuning job {job_id} not found (unknown, or not yours)",
                           param=param, code="fine_tuning_job_not_found")
        return record

    async def update(self, job_id: str, **changes: Any) -> Job:
        """Changes the job's fields (nothing once it has ended); the job as stored now."""
        async with self._lock:
            record = await self.record(job_id)
            job: Job = record["job"]
            if job["status"] in FINAL:
                return job
            job.update(changes)
            await self.records.put(KIND, job_id, record)
        if job["status"] in FINAL:
            self._notify(job_id)
        return job

    async def add_event(self, job_id: str, event: dict[str, Any]) -> None:
        await self.records.append(KIND, job_id, event)
        self._notify(job_id)

    async def all(self, owner: str | None = None) -> list[Record]:
        """Every job record (the owner's only, when given), newest first."""
        records = [r for r in await self.records.all(KIND)
                   if owner is None or r.get("owner") == owner]
        return sorted(records, key=lambda r: (r["job"]["created_at"], r["job"]["id"]),
                      reverse=True)

    async def events(self, job_id: str, start: int = 0) -> list[dict[str, Any]]:
        """The job's events from index `start` on, oldest first."""
        return await self.records.items(KIND, job_id, start)

    async def follow(self, job_id: str, start: int = 0) -> AsyncIterator[tuple[int, dict[str, Any]]]:
        """(index, event) from `start` on, live, until the job has ended and every event of it
        has been given."""
        while True:
            changed = self._changed.setdefault(job_id, asyncio.Event())
            for event in await self.events(job_id, start):
                yield start, event
                start += 1
            if (await self.record(job_id))["job"]["status"] in FINAL:
                for event in await self.events(job_id, start):  # appended just before the end
                    yield start, event
                    start += 1
                return
            # Woken by this process's next event; a job elsewhere is polled. asyncio.timeout,
            # not wait_for, which on 3.11 can swallow the cancel of a follower whose client left.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_S):
                    await changed.wait()

    def _notify(self, job_id: str) -> None:
        changed = self._changed.pop(job_id, None)
        if changed is not None:
            changed.set()


def page(items: list[dict[str, Any]], after: str | None, limit: int) -> tuple[list[Any], bool]:
    """OpenAI's cursor pages: the items after the one whose id is `after`, at most `limit`,
    and whether more follow."""
    start = 0
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise InvalidRequest(f"'after': no such id in this list: {after!r}", param="after")
        start = ids.index(after) + 1
    chosen = items[start:start + limit]
    return chosen, start + limit < len(items)
