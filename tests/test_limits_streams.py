"""Each key's generations at once (app/limits/streams.py): the cap in memory and in a real
Redis, then across replicas ("replicas" are `RedisStreams` with a client each over one
redis-server): one cap shared, a dead replica's count running out while a live one's is kept,
an end seen at once (even one ended during a refresh), and Redis away: counted on each replica
alone, logged once, and put back in Redis once it answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from app.limits import MemoryStreams, RedisStreams, StreamCounts
from app.redis_calls import StoreClient, connect
from tests.redis_server import RedisServer
from tests.waiting import until

TTL_S = 0.3  # refreshed every 0.1 s: a dead replica's count runs out within 0.3 s
BOUND_S = 10.0


@pytest.fixture
async def replicas(redis_server: RedisServer) -> AsyncIterator[Callable[..., RedisStreams]]:
    """Makes one replica's `RedisStreams` after another, each with its own client."""
    redis_server.flush()
    made: list[tuple[RedisStreams, Any]] = []

    def make(ttl_s: float = TTL_S) -> RedisStreams:
        # The service's own client: every call bounded. Without a timeout, a refresh cancelled
        # mid-call (a replica closed) once left a read that never returned, and the teardown
        # waited on it until CI's 300 s limit.
        client = connect(redis_server.url, timeout_s=BOUND_S)
        made.append((RedisStreams(client, ttl_s=ttl_s), client))
        return made[-1][0]

    yield make
    for streams, client in made:
        await streams.close()
        await client.health.close()
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def counts(request: pytest.FixtureRequest) -> AsyncIterator[StreamCounts]:
    if request.param == "memory":
        yield MemoryStreams()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    server.flush()
    client = connect(server.url, timeout_s=BOUND_S)
    streams = RedisStreams(client, ttl_s=TTL_S)
    yield streams
    await streams.close()
    await client.health.close()
    await client.aclose()


async def counted(redis: Any, owner: str) -> int:
    """What every replica sees: the members of `owner`'s set that have not run out."""
    seconds, micros = await redis.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    return int(await redis.zcount(f"sc:streams:{owner}", f"({now_ms}", "+inf"))


async def eventually(condition: Callable[[], Any], timeout_s: float = BOUND_S) -> None:
    """`until`, for a condition that asks Redis."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await condition():
        if loop.time() >= deadline:
            raise TimeoutError(f"still not true after {timeout_s} s")
        await asyncio.sleep(0.02)


# -- both backends -----------------------------------------------------------------------------

async def test_the_cap_refuses_then_admits_after_an_end(counts: StreamCounts) -> None:
    assert await counts.start("alice", 2) and await counts.start("alice", 2)
    assert not await counts.start("alice", 2)
    assert counts.here("alice") == 2
    assert await counts.start("bob", 2)  # another key has its own
    await counts.end("alice")
    assert counts.here("alice") == 1
    assert await counts.start("alice", 2)
    await counts.end("nobody")  # an end with no start uncounts nothing
    assert counts.here("nobody") == 0


async def test_an_end_is_counted_here_before_any_await(counts: StreamCounts) -> None:
    assert await counts.start("alice", 1)
    told = counts.end("alice")
    assert counts.here("alice") == 0  # given back already: a cancelled caller gives it back too
    told.cancel()  # and every replica is told all the same
    await eventually(lambda: counts.start("alice", 1))


# -- Redis: across replicas ------------------------------------------------------------------

async def test_two_replicas_share_one_cap(replicas: Callable[..., RedisStreams]) -> None:
    one, two = replicas(), replicas()
    assert await one.start("alice", 2)
    assert await two.start("alice", 2)
    assert not await one.start("alice", 2) and not await two.start("alice", 2)
    assert await two.start("bob", 2)
    await one.end("alice")
    assert await counted(two.redis, "alice") == 1  # seen ended by every replica at once
    assert await two.start("alice", 2)
    assert (one.here("alice"), two.here("alice")) == (0, 2)


async def test_a_dead_replicas_streams_run_out_and_a_live_ones_do_not(
        replicas: Callable[..., RedisStreams]) -> None:
    dead, live, other = replicas(), replicas(), replicas()
    assert await dead.start("alice", 2)
    assert await live.start("alice", 2)
    assert not await other.start("alice", 2)
    await dead.close()  # it refreshes no more, as a killed replica; its generation never ends
    await eventually(lambda: other.start("alice", 2))  # counted again once it ran out
    # Time passing is the behaviour: many TTLs later, the live replica's generation still counts.
    await asyncio.sleep(TTL_S * 4)
    assert await counted(other.redis, "alice") == 2
    assert not await other.start("alice", 2)


async def test_an_end_during_a_refresh_is_not_undone_by_it(
        replicas: Callable[..., RedisStreams]) -> None:
    one = replicas(ttl_s=60)  # no refresh of its own during the test
    assert await one.start("alice", 2)
    hold, real = asyncio.Event(), one._refresh
    read = asyncio.Event()

    async def held_refresh(**kwargs: Any) -> Any:
        read.set()  # it has read the members: the one about to end among them
        await hold.wait()
        return await real(**kwargs)

    one._refresh = held_refresh
    one._round = asyncio.create_task(one._refresh_here())
    await read.wait()
    told = one.end("alice")
    hold.set()
    await told
    assert await one._round
    assert await counted(one.redis, "alice") == 0  # removed after the refresh, not before


async def test_an_end_whose_caller_is_cancelled_still_reaches_redis(
        replicas: Callable[..., RedisStreams]) -> None:
    one = replicas()
    assert await one.start("alice", 1)
    told = one.end("alice")
    told.cancel()
    await eventually(lambda: _none_counted(one.redis, "alice"))


async def _none_counted(redis: Any, owner: str) -> bool:
    return await counted(redis, owner) == 0


# -- Redis away: fail open -------------------------------------------------------------------

@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    server = RedisServer()  # its own: killed and started again
    yield server
    server.stop()


@pytest.fixture
async def client(own_server: RedisServer) -> AsyncIterator[StoreClient]:
    redis = connect(own_server.url, timeout_s=0.3)
    redis.health.every_s = 0.02
    yield redis
    await redis.health.close()
    await redis.aclose()


async def test_redis_away_counts_on_each_replica_alone_then_puts_them_back(
        own_server: RedisServer, client: StoreClient, caplog: pytest.LogCaptureFixture) -> None:
    streams = RedisStreams(client, ttl_s=TTL_S)
    try:
        assert await streams.start("alice", 3)
        own_server.kill()
        with caplog.at_level(logging.WARNING, "streamchat.limits"):
            assert await streams.start("alice", 3)  # fail open, never an error
            assert await streams.start("alice", 3)
            assert not await streams.start("alice", 3)  # this replica still caps the key
            await streams.end("alice")  # no error either: it would run out by itself
            assert await streams.start("alice", 3)
        warned = [r for r in caplog.records if "counted on each replica alone" in r.message]
        assert len(warned) == 1
        own_server.start()  # a new, empty Redis
        client.health.start()
        await until(lambda: client.health.up, BOUND_S)
        # The next refresh puts back what runs here: the three generations run.
        await eventually(lambda: _counted_is(client, "alice", 3))
    finally:
        await streams.close()


async def _counted_is(redis: Any, owner: str, expected: int) -> bool:
    return await counted(redis, owner) == expected
