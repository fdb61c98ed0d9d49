"""Every Redis call, through the one client (app/redis_calls.py), against a real redis-server
that dies, restarts or hangs: a call to an unreachable Redis raises StoreUnavailable (never
redis-py's errors, never a hang past the timeout), commands, pipelines and scripts alike, and
tells the store's health, after which calls are refused without trying until a ping answers;
a pooled connection a restart closed is replaced without a failed call; the rate-limit buckets
fail open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from app.errors import StoreUnavailable
from app.leases.redis import RedisLeaseStore
from app.limits import RedisBuckets
from app.redis_calls import StoreClient, connect
from app.sessions.models import Session
from app.sessions.redis import RedisSessionStore
from tests.redis_server import RedisServer
from tests.waiting import until

TIMEOUT_S = 0.3  # the client's; short, since waiting for it is what one test does
BOUND_S = 10.0  # what a call may take here before the test fails instead of hanging


@pytest.fixture
def server() -> Iterator[RedisServer]:
    redis = RedisServer()  # its own: these tests kill and hang it
    yield redis
    redis.stop()


@pytest.fixture
async def client(server: RedisServer) -> AsyncIterator[StoreClient]:
    redis = connect(server.url, timeout_s=TIMEOUT_S)
    redis.health.every_s = 0.02
    yield redis
    await redis.health.close()
    await redis.aclose()


async def refused(call: object) -> StoreUnavailable:
    with pytest.raises(StoreUnavailable) as raised:
        await asyncio.wait_for(call, BOUND_S)  # type: ignore[arg-type]
    assert raised.value.code == "store_unavailable"
    return raised.value


async def pipelined(client: StoreClient) -> None:
    async with client.pipeline() as pipe:
        pipe.set("k", b"2")
        await pipe.execute()


async def test_a_dead_redis_is_store_unavailable_for_commands_pipelines_and_scripts(
        server: RedisServer, client: StoreClient) -> None:
    store, leases = RedisSessionStore(client), RedisLeaseStore(client)
    session = Session.new(system=None, params={}, title=None, owner=None)
    await store.create(session)  # a pipeline
    assert await leases.acquire("reply", session.id, "m1", 15) is None  # a script
    server.kill()
    await refused(client.get("k"))
    assert not client.health.up
    # Known away now: each is refused before it tries.
    await refused(store.get(session.id))
    await refused(leases.refresh("reply", session.id, "m1", 15))


async def test_calls_are_refused_without_trying_until_the_ping_finds_redis_back(
        server: RedisServer, client: StoreClient) -> None:
    await client.set("k", b"1")
    server.kill()
    await refused(client.get("k"))
    server.start()
    await refused(client.get("k"))  # Redis is back, but nobody pinged it yet: not tried
    client.health.start()
    await until(lambda: client.health.up, BOUND_S)
    assert await client.get("k") is None  # a new server, without persistence


async def test_a_hung_redis_is_store_unavailable_within_the_timeout(
        server: RedisServer, client: StoreClient) -> None:
    await client.set("k", b"1")
    server.pause()
    try:
        reason = await refused(client.get("k"))
        assert "Timeout" in reason.message
        await refused(pipelined(client))  # at once, now
        client.health.start()
        server.resume()
        await until(lambda: client.health.up, BOUND_S)
        assert await client.get("k") == b"1"
    finally:
        server.resume()


async def test_a_connection_closed_by_a_restart_is_replaced_without_a_failed_call(
        server: RedisServer, client: StoreClient) -> None:
    await client.set("k", b"1")  # a connection in the pool
    server.kill()
    server.start()
    assert await client.get("k") is None  # the dead connection retried once, on a new one
    assert client.health.up


async def test_rate_limit_buckets_fail_open_while_redis_is_away(
        server: RedisServer, client: StoreClient) -> None:
    buckets = RedisBuckets(client)
    assert await buckets.take("key", 1, 1) == 0.0
    assert await buckets.take("key", 1, 1) > 0  # spent: a minute to wait
    server.kill()
    # Read as full buckets: nothing refused, nothing charged, nothing raised.
    assert await buckets.take("key", 1, 1) == 0.0
    await buckets.charge("key", 5, 1)
    assert await buckets.level("key", 10) == 10
