"""The shared store's health (app/store_health.py): up until a call finds it unreachable, then
every call refused at once (StoreUnavailable, with Retry-After) until the watcher's ping
answers; an outage no call met is seen by the ping alone; `/ready`'s answer (app/lifecycle.py)
follows it, while generations are still accepted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.errors import NotReady, StoreUnavailable
from app.lifecycle import Lifecycle
from app.store_health import StoreHealth
from tests.fakes import ScriptedEngine
from tests.waiting import until


class Ping:
    """A store that answers the ping while `answers`, and counts the pings."""

    def __init__(self) -> None:
        self.answers = True
        self.count = 0

    async def __call__(self) -> None:
        self.count += 1
        if not self.answers:
            raise ConnectionRefusedError("Connection refused")


@pytest.fixture
async def watched() -> AsyncIterator[tuple[StoreHealth, Ping]]:
    ping = Ping()
    health = StoreHealth(ping, every_s=0.01)
    health.start()
    yield health, ping
    await health.close()


def test_a_failed_call_makes_every_call_refused_at_once() -> None:
    health = StoreHealth(Ping())
    health.check()  # up: nothing raised
    health.failed(ConnectionRefusedError("Connection refused"))
    assert not health.up
    with pytest.raises(StoreUnavailable) as refused:
        health.check()
    assert refused.value.code == "store_unavailable" and refused.value.retry_after_s > 0
    assert "ConnectionRefusedError: Connection refused" in refused.value.message
    assert isinstance(refused.value, NotReady)  # a 503 with Retry-After


async def test_the_watcher_finds_the_store_back_after_a_failed_call(
        watched: tuple[StoreHealth, Ping]) -> None:
    health, ping = watched
    ping.answers = False
    health.failed(ConnectionRefusedError("Connection refused"))
    seen = ping.count
    await until(lambda: ping.count >= seen + 3)  # pinged again and again: still away
    assert not health.up
    ping.answers = True
    await until(lambda: health.up)
    health.check()


async def test_the_ping_alone_sees_an_outage_no_call_met(
        watched: tuple[StoreHealth, Ping]) -> None:
    health, ping = watched
    await until(lambda: ping.count >= 2)
    assert health.up
    ping.answers = False
    await until(lambda: not health.up)
    assert health.unreachable == "ConnectionRefusedError: Connection refused"
    ping.answers = True
    await until(lambda: health.up)


def test_ready_says_503_while_the_store_is_away_and_generations_still_start() -> None:
    ping = Ping()
    health = StoreHealth(ping)
    lifecycle = Lifecycle(ScriptedEngine())
    assert lifecycle.ready_reason() is None  # no store: memory mode
    lifecycle.store = health
    assert lifecycle.ready_reason() is None
    health.failed(ConnectionRefusedError("Connection refused"))
    reason = lifecycle.ready_reason()
    assert reason is not None and "shared store (Redis) is unreachable" in reason
    # What needs no store (a stateless completion) goes on; what needs it says so itself.
    assert lifecycle.not_ready_reason() is None
    lifecycle.check_accepting()
    lifecycle.drain()
    assert lifecycle.ready_reason() == "draining"  # the replica's own reasons first


async def test_close_ends_the_watcher_even_when_woken_as_it_is_cancelled() -> None:
    """A wake (a failed call) landing as `close` cancels the watcher: on 3.11, wait_for gave
    the wake back instead of the cancel, the watcher ran on and `close` never returned (CI
    hung 300 s in a teardown). Every interleaving of a few loop turns is tried."""
    for spins in range(6):
        for _ in range(40):
            health = StoreHealth(Ping(), every_s=0.0005)
            health.start()
            for _ in range(spins):
                await asyncio.sleep(0)
            health.failed(ConnectionRefusedError("Connection refused"))
            await asyncio.sleep(0)
            closing = asyncio.create_task(health.close())
            done, _ = await asyncio.wait({closing}, timeout=2)
            assert closing in done, f"close did not end (woken after {spins} loop turns)"


async def test_close_cancelled_while_it_waits_for_the_watcher_is_cancelled() -> None:
    """A shutdown that cancels `close` while the watcher is still ending (its ping's cleanup
    awaits) gets its cancellation back: `close` no longer swallows it (app/tasks.py)."""
    pinging, release = asyncio.Event(), asyncio.Event()

    async def ping() -> None:
        try:
            pinging.set()
            await asyncio.Event().wait()
        finally:
            await release.wait()  # a connection that takes its time to close

    health = StoreHealth(ping, every_s=0.001)
    health.start()
    await pinging.wait()
    closing = asyncio.create_task(health.close())
    await asyncio.sleep(0)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    release.set()
    await health.close()  # the watcher ends now
