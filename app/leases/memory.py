"""Leases held in this process: the default, for a single replica. They run out as Redis's do
(monotonic time), so a lease nobody refreshes behaves the same in both stores; several `Leases`
sharing one store (tests) hear each other's cancel requests, as replicas do through Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

from app.leases.store import CancelRequest


class MemoryLeaseStore:
    def __init__(self) -> None:
        self._leases: dict[tuple[str, str], tuple[str, float]] = {}  # -> holder, runs out at
        self._listeners: set[asyncio.Queue[CancelRequest]] = set()

    def _current(self, kind: str, lease_id: str) -> str | None:
        entry = self._leases.get((kind, lease_id))
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            del self._leases[(kind, lease_id)]
            return None
        return entry[0]

    async def acquire(self, kind: str, lease_id: str, holder: str, ttl_s: float) -> str | None:
        current = self._current(kind, lease_id)
        if current is not None:
            return current
        self._leases[(kind, lease_id)] = (holder, time.monotonic() + ttl_s)
        return None

    async def refresh(self, kind: str, lease_id: str, holder: str, ttl_s: float) -> bool:
        if self._current(kind, lease_id) not in (holder, None):
            return False
        self._leases[(kind, lease_id)] = (holder, time.monotonic() + ttl_s)
        return True

    async def release(self, kind: str, lease_id: str, holder: str) -> None:
        if self._current(kind, lease_id) == holder:
            del self._leases[(kind, lease_id)]

    async def holder(self, kind: str, lease_id: str) -> str | None:
        return self._current(kind, lease_id)

    async def request_cancel(self, request: CancelRequest) -> None:
        for queue in self._listeners:
            queue.put_nowait(request)

    async def cancel_requests(self) -> AsyncGenerator[CancelRequest, None]:
        queue: asyncio.Queue[CancelRequest] = asyncio.Queue()
        self._listeners.add(queue)  # listening from now on, as a Redis subscription is

        async def requests() -> AsyncGenerator[CancelRequest, None]:
            try:
                while True:
                    yield await queue.get()
            finally:
                self._listeners.discard(queue)

        return requests()
