"""`Leases`: what the service calls to run work on this replica that other replicas follow,
cancel or repair (the package docstring says who uses it and how).

It remembers the leases this replica holds, and one keeper task refreshes all of them every
`lease_s / 3`; a refresh that fails (Redis restarting, or unreachable) is logged and tried again
`RETRY_S` later, until Redis answers. While it does not, this replica goes on believing what it
knows (it holds what it runs; `holder` answers for those without asking Redis), and other
replicas cannot read the lease at all. If Redis stayed away longer than the lease, the lease
ran out there meanwhile: the first refresh that reaches Redis takes it back (nobody took it) or
finds another holder (logged: another replica took the work as abandoned). One listener hears
cancel requests from other replicas and stops the work named, if it is still run here under
that holder."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

from app.errors import StoreUnavailable
from app.leases.store import CancelRequest, LeaseStore

log = logging.getLogger("streamchat.leases")

LEASE_S = 15.0  # a dead replica's work is known to be abandoned this long after it died
CANCEL_WAIT_S = 10.0  # how long `cancel` waits for another replica to let go of the work
CANCEL_POLL_S = 0.05
RELISTEN_S = 1.0
RETRY_S = 1.0  # after a round that failed: a lease that ran out is taken back this soon

Stop = Callable[[str], Coroutine[Any, Any, None]]  # stops the work run here under an id, once it ended


class Leases:
    def __init__(self, store: LeaseStore, *, lease_s: float = LEASE_S,
                 cancel_wait_s: float = CANCEL_WAIT_S) -> None:
        self.store = store
        self.lease_s = lease_s
        self.cancel_wait_s = cancel_wait_s
        self._held: dict[tuple[str, str], str] = {}  # (kind, id) -> holder, run here
        self._stops: dict[str, Stop] = {}  # kind -> how its work run here is stopped
        self._keeper: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()  # relayed stops, held until done

    def serve(self, kind: str, stop: Stop) -> None:
        """How work of `kind` run here is stopped: `stop(id)`, returning once it has ended.
        `cancel` calls it, on this replica or relayed from another one."""
        self._stops[kind] = stop

    async def start(self) -> None:
        """Listen for cancel requests from other replicas; returns once listening (a request
        made before would be missed). Calling it again does nothing."""
        if self._listener is not None and not self._listener.done():
            return
        requests = None
        try:
            requests = await self.store.cancel_requests()
        except Exception:
            log.exception("listening for cancel requests failed; retrying")
        self._listener = asyncio.create_task(self._listen(requests), name="lease-cancels")

    async def acquire(self, kind: str, lease_id: str, holder: str) -> str | None:
        """Take the lease for work about to run here: None when taken (then kept alive until
        `release`), else who holds it now."""
        current = await self.store.acquire(kind, lease_id, holder, self.lease_s)
        if current is None:
            self._held[(kind, lease_id)] = holder
            if self._keeper is None or self._keeper.done():
                self._keeper = asyncio.create_task(self._keep(), name="lease-keeper")
        return current

    async def release(self, kind: str, lease_id: str, holder: str) -> None:
        """The work ended (and is stored as ended): let go of its lease."""
        if self._held.get((kind, lease_id)) == holder:
            del self._held[(kind, lease_id)]
        await self.store.release(kind, lease_id, holder)

    async def holder(self, kind: str, lease_id: str) -> str | None:
        """Who runs the work under (kind, id), here or on another replica; None: nobody."""
        here = self._held.get((kind, lease_id))
        return here if here is not None else await self.store.holder(kind, lease_id)

    async def gone(self, kind: str, lease_id: str, holder: str | None = None) -> bool:
        """Whether nobody runs the work under (kind, id) (as `holder`, when given) any more:
        its replica let go of it, or died and the lease ran out. Work still stored as
        unfinished then was abandoned: its caller reads it again (it may have just ended)
        and, if it is still unfinished, stores it as ended by the interruption."""
        current = await self.holder(kind, lease_id)
        return current is None or (holder is not None and current != holder)

    async def cancel(self, kind: str, lease_id: str, holder: str | None = None) -> None:
        """Stop the work under (kind, id) (only `holder`'s, when given) wherever it runs: here
        at once, or by asking the replica holding it, then waiting until it lets go of the
        lease (`cancel_wait_s` at most: a replica that died lets go when the lease runs out)."""
        here = self._held.get((kind, lease_id))
        if here is not None:
            stop = self._stops.get(kind)
            if stop is not None and holder in (None, here):
                await stop(lease_id)
            return
        current = await self.store.holder(kind, lease_id)
        if current is None or holder not in (None, current):
            return
        await self.store.request_cancel(CancelRequest(kind, lease_id, current))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cancel_wait_s
        # No event crosses replicas when a lease goes: poll for it.
        while loop.time() < deadline and await self.store.holder(kind, lease_id) == current:  # noqa: ASYNC110
            await asyncio.sleep(CANCEL_POLL_S)

    async def close(self) -> None:
        """Stop refreshing and listening (shutdown, once the work run here has ended)."""
        tasks = [t for t in (self._keeper, self._listener, *self._stopping) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep(self) -> None:
        lost: set[tuple[tuple[str, str], str]] = set()  # said once, not at every round
        failed = away = False  # away: the store unreachable, said once until it is back
        while self._held:
            await asyncio.sleep(min(RETRY_S, self.lease_s / 3) if failed else self.lease_s / 3)
            failed = False
            for key, holder in list(self._held.items()):
                try:
                    kept = await self.store.refresh(*key, holder, self.lease_s)
                except StoreUnavailable as exc:  # no traceback: the store's health logs it
                    failed = True
                    if not away:
                        away = True
                        log.warning("refreshing leases failed (%s); retrying every %.0f s",
                                    exc.message, RETRY_S)
                    continue
                except Exception:
                    failed = True
                    log.exception("refreshing the lease %s:%s failed; retrying", *key)
                    continue
                if not kept and self._held.get(key) == holder and (key, holder) not in lost:
                    lost.add((key, holder))
                    log.warning("the lease %s:%s ran out while its work runs here, and "
                                "another holder took it: other replicas take it as abandoned",
                                *key)
            lost.intersection_update(self._held.items())
            if away and not failed:
                away = False
                log.info("leases refreshed again")

    async def _listen(self, requests: AsyncGenerator[CancelRequest, None] | None) -> None:
        while True:
            try:
                if requests is None:
                    requests = await self.store.cancel_requests()
                async with contextlib.aclosing(requests):
                    async for request in requests:
                        self._obey(request)
                return
            except asyncio.CancelledError:
                raise
            except StoreUnavailable:  # said by the store's health: retried quietly
                requests = None
                await asyncio.sleep(RELISTEN_S)
            except Exception:
                log.exception("listening for cancel requests failed; retrying")
                requests = None
                await asyncio.sleep(RELISTEN_S)

    def _obey(self, request: CancelRequest) -> None:
        stop = self._stops.get(request.kind)
        if stop is None or self._held.get((request.kind, request.id)) != request.holder:
            return  # another replica's work, or it ended meanwhile
        # In a task of its own: the next request need not wait until this work has ended.
        task = asyncio.create_task(stop(request.id), name=f"cancel-{request.kind}-{request.id}")
        self._stopping.add(task)
        task.add_done_callback(self._stopped)

    def _stopped(self, task: asyncio.Task[None]) -> None:
        self._stopping.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("stopping %s failed", task.get_name(), exc_info=task.exception())
