"""One lease mechanism (app/leases/), every test against memory and a real Redis: one holder at
a time, a dead holder's lease runs out, the keeper refreshes what a replica holds (and retries a
failed refresh), `cancel` stops the work here or is relayed to the replica holding it and waits
until it lets go (bounded), and `gone` is the rule for abandoned work.

"Replicas" are `Leases` sharing one store: one `MemoryLeaseStore` object, or one redis-server
with a client each."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from app.leases import CancelRequest, Leases, LeaseStore, MemoryLeaseStore
from tests.redis_server import RedisServer

KIND = "work"
Replica = Callable[..., Leases]


@pytest.fixture(params=["memory", "redis"])
async def replica(request: pytest.FixtureRequest) -> AsyncIterator[Replica]:
    """Makes one replica's `Leases` after another, all over one store."""
    made: list[Leases] = []
    clients: list[Any] = []
    shared = MemoryLeaseStore()

    def store() -> LeaseStore:
        if request.param == "memory":
            return shared
        from redis.asyncio import Redis

        from app.leases.redis import RedisLeaseStore

        server: RedisServer = request.getfixturevalue("redis_server")
        clients.append(Redis.from_url(server.url))
        return RedisLeaseStore(clients[-1])

    if request.param == "redis":
        request.getfixturevalue("redis_server").flush()

    def make(**options: Any) -> Leases:
        made.append(Leases(store(), **options))
        return made[-1]

    yield make
    for leases in made:
        await leases.close()
    for client in clients:
        await client.aclose()


class Refreshes:
    """A lease store whose refreshes are reported (each lease id in `calls`), and whose next
    `fail` refreshes raise, as with Redis restarting."""

    def __init__(self, inner: LeaseStore) -> None:
        self.inner = inner
        self.calls: asyncio.Queue[str] = asyncio.Queue()
        self.fail = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def refresh(self, kind: str, lease_id: str, holder: str, ttl_s: float) -> bool:
        self.calls.put_nowait(lease_id)
        if self.fail:
            self.fail -= 1
            raise ConnectionError("Redis is restarting")
        return await self.inner.refresh(kind, lease_id, holder, ttl_s)


def refreshed(leases: Leases) -> Refreshes:
    spy = Refreshes(leases.store)
    leases.store = spy  # type: ignore[assignment]
    return spy


class Work:
    """What a replica runs under leases: `stop` records the id, then lets go of its lease
    (unless `stubborn`), as a reply or a job does once it has ended."""

    def __init__(self, leases: Leases, holder: str, *, stubborn: bool = False) -> None:
        self.leases = leases
        self.holder = holder
        self.stubborn = stubborn
        self.stopped: asyncio.Queue[str] = asyncio.Queue()
        leases.serve(KIND, self.stop)

    async def stop(self, lease_id: str) -> None:
        self.stopped.put_nowait(lease_id)
        await asyncio.sleep(0)  # it ends a moment later
        if not self.stubborn:
            await self.leases.release(KIND, lease_id, self.holder)


async def until_gone(leases: Leases, lease_id: str, timeout_s: float = 5.0) -> None:
    """Expiry is time itself passing: poll for it, bounded."""
    async with asyncio.timeout(timeout_s):
        while await leases.holder(KIND, lease_id) is not None:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_one_holder_at_a_time(replica: Replica) -> None:
    a, b = replica(), replica()
    assert await a.acquire(KIND, "x", "h1") is None
    assert await b.acquire(KIND, "x", "h2") == "h1"
    assert await b.holder(KIND, "x") == "h1"
    await b.release(KIND, "x", "h2")  # not the holder: nothing happens
    assert await b.holder(KIND, "x") == "h1"
    assert await b.acquire("other", "x", "h3") is None  # kinds are apart
    await a.release(KIND, "x", "h1")
    assert await b.holder(KIND, "x") is None
    assert await b.acquire(KIND, "x", "h2") is None


async def test_a_lease_its_dead_holder_stopped_refreshing_runs_out(replica: Replica) -> None:
    dead, alive = replica(), replica()
    # Taken through the store alone: nobody keeps it alive, as after its replica died.
    assert await dead.store.acquire(KIND, "x", "h1", 0.1) is None
    assert not await alive.gone(KIND, "x")
    await until_gone(alive, "x")
    assert await alive.gone(KIND, "x", "h1")
    assert await alive.acquire(KIND, "x", "h2") is None


async def test_the_keeper_refreshes_every_lease_held_here(replica: Replica) -> None:
    a, b = replica(lease_s=0.3), replica()
    spy = refreshed(a)
    await a.acquire(KIND, "x", "hx")
    await a.acquire(KIND, "y", "hy")
    seen = [await asyncio.wait_for(spy.calls.get(), 5) for _ in range(8)]
    # Four rounds, one every lease_s / 3: past the lease's own 0.3 s, and still held.
    assert seen.count("x") == seen.count("y") == 4
    assert await b.holder(KIND, "x") == "hx" and await b.holder(KIND, "y") == "hy"
    await a.release(KIND, "x", "hx")
    later = [await asyncio.wait_for(spy.calls.get(), 5) for _ in range(6)]
    assert later[-3:] == ["y", "y", "y"]  # x no longer refreshed (a round begun may have)


async def test_a_failed_refresh_is_logged_and_tried_again(
        replica: Replica, caplog: pytest.LogCaptureFixture) -> None:
    a, b = replica(lease_s=0.3), replica()
    spy = refreshed(a)
    spy.fail = 1
    with caplog.at_level(logging.ERROR, "streamchat.leases"):
        await a.acquire(KIND, "x", "h")
        for _ in range(4):  # the failed round, then three more
            await asyncio.wait_for(spy.calls.get(), 5)
    assert "refreshing the lease work:x failed" in caplog.text
    assert await b.holder(KIND, "x") == "h"  # past its 0.3 s: the next rounds kept it


async def test_a_refresh_takes_back_a_lease_that_ran_out_unless_another_holder_took_it(
        replica: Replica) -> None:
    # As after Redis was away longer than the lease: it ran out there meanwhile.
    a, b = replica(), replica()
    assert await a.store.acquire(KIND, "x", "h1", 0.05) is None
    await until_gone(b, "x")
    assert await a.store.refresh(KIND, "x", "h1", 15)  # nobody took it: taken back
    assert await b.holder(KIND, "x") == "h1"
    assert await a.store.acquire(KIND, "y", "h1", 0.05) is None
    await until_gone(b, "y")
    assert await b.acquire(KIND, "y", "h2") is None  # taken as abandoned
    assert not await a.store.refresh(KIND, "y", "h1", 15)
    assert await b.holder(KIND, "y") == "h2"


async def test_cancel_stops_the_work_here(replica: Replica) -> None:
    a = replica()
    work = Work(a, "h")
    await a.acquire(KIND, "x", "h")
    await a.cancel(KIND, "x", "someone else")  # another holder's cancel: not this work
    assert work.stopped.empty()
    await asyncio.wait_for(a.cancel(KIND, "x"), 5)
    assert work.stopped.get_nowait() == "x" and await a.holder(KIND, "x") is None


async def test_cancel_is_relayed_to_the_holder_and_waits_until_it_lets_go(
        replica: Replica) -> None:
    a, b = replica(), replica()
    work = Work(a, "h")
    await a.start()
    await a.acquire(KIND, "x", "h")
    await asyncio.wait_for(b.cancel(KIND, "x"), 5)
    assert work.stopped.get_nowait() == "x"
    assert await b.holder(KIND, "x") is None  # it had let go when cancel returned


async def test_a_relayed_cancel_stops_only_the_holder_named(replica: Replica) -> None:
    a, b = replica(), replica()
    work = Work(a, "h2")
    await a.start()
    await a.acquire(KIND, "x", "h2")  # a newer work under the same id
    await b.store.request_cancel(CancelRequest(KIND, "x", "h1"))  # for one that ended
    await a.acquire(KIND, "y", "h2")
    await b.store.request_cancel(CancelRequest(KIND, "y", "h2"))
    # Requests are obeyed in order: once y is stopped, the one for x was heard and ignored.
    assert await asyncio.wait_for(work.stopped.get(), 5) == "y"
    assert work.stopped.empty() and await b.holder(KIND, "x") == "h2"


async def test_cancel_of_nothing_or_of_another_holder_returns_at_once(replica: Replica) -> None:
    a, b = replica(), replica(cancel_wait_s=60)
    work = Work(a, "h1")
    await a.start()
    await a.acquire(KIND, "x", "h1")
    await asyncio.wait_for(b.cancel(KIND, "nothing"), 1)
    await asyncio.wait_for(b.cancel(KIND, "x", "h2"), 1)
    assert work.stopped.empty() and await b.holder(KIND, "x") == "h1"


async def test_cancel_waits_cancel_wait_s_at_most(replica: Replica) -> None:
    a, b = replica(), replica(cancel_wait_s=0.2)
    work = Work(a, "h", stubborn=True)
    await a.start()
    await a.acquire(KIND, "x", "h")
    await asyncio.wait_for(b.cancel(KIND, "x"), 5)  # gives up: the holder never lets go
    assert await asyncio.wait_for(work.stopped.get(), 5) == "x"
    assert await b.holder(KIND, "x") == "h"


async def test_gone_is_the_rule_for_abandoned_work(replica: Replica) -> None:
    a, b = replica(), replica()
    await a.acquire(KIND, "x", "h")
    assert not await a.gone(KIND, "x") and not await a.gone(KIND, "x", "h")
    assert not await b.gone(KIND, "x") and not await b.gone(KIND, "x", "h")
    assert await b.gone(KIND, "x", "an earlier holder")  # that one's work ended
    assert await b.gone(KIND, "never taken")
    await a.release(KIND, "x", "h")
    assert await a.gone(KIND, "x") and await b.gone(KIND, "x", "h")


def test_leases_and_records_do_not_import_starlette() -> None:
    code = ("import sys, app.leases, app.leases.redis, app.records, app.replies.detached, "
            "app.finetune.manager; assert 'starlette' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
