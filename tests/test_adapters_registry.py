"""The adapters' shared registry (app/adapters/registry.py), in memory and in a real Redis:
a name taken once, its files kept with it and dropped with it, the base model's first
`created` kept, and with Redis every change announced to a follower subscribed before it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.adapters.registry import Entry, MemoryRegistry, RedisRegistry, Registry
from app.errors import Conflict, NotFound
from app.redis_calls import connect
from tests.redis_server import RedisServer

FILES = {"adapter_config.json": b'{"r": 8}', "adapter_model.safetensors": b"\x00" * 1000}


def entry(name: str = "a", version: str = "lora-1", stored: bool = True) -> Entry:
    return Entry(name=name, version=version, root=f"/adapters/{name}", created=1000,
                 stored=stored)


@pytest.fixture(params=["memory", "redis"])
async def registry(request: pytest.FixtureRequest,
                   redis_server: RedisServer) -> AsyncIterator[Registry]:
    if request.param == "memory":
        yield MemoryRegistry()
        return
    redis_server.flush()
    client = connect(redis_server.url, timeout_s=2)
    yield RedisRegistry(client)
    await client.aclose()


async def test_a_name_is_taken_once_and_freed_by_unregistering(registry: Registry) -> None:
    await registry.register(entry(), FILES)
    with pytest.raises(Conflict) as taken:
        await registry.register(entry(version="lora-2"), FILES)
    assert taken.value.code == "lora_exists"
    assert await registry.entries() == {"a": entry()}
    assert await registry.unregister("a") == entry()
    assert await registry.entries() == {}
    with pytest.raises(NotFound) as unknown:
        await registry.unregister("a")
    assert unknown.value.code == "lora_not_found"
    await registry.register(entry(version="lora-2"), FILES)
    assert (await registry.entries())["a"].version == "lora-2"


async def test_the_base_model_keeps_the_first_created(registry: Registry) -> None:
    first = await registry.first_served("base", 1000)
    assert first == 1000
    later = await registry.first_served("base", 2000)
    assert later == (2000 if not registry.shared else 1000)


async def test_redis_keeps_an_adapters_files_with_its_name(redis_server: RedisServer) -> None:
    redis_server.flush()
    client = connect(redis_server.url, timeout_s=2)
    registry = RedisRegistry(client)
    try:
        await registry.register(entry(), FILES)
        assert await registry.files(entry()) == FILES
        with pytest.raises(Conflict):  # the loser's files are not left behind
            await registry.register(entry(version="lora-2"), FILES)
        assert await registry.files(entry(version="lora-2")) is None
        await registry.unregister("a")
        assert await registry.files(entry()) is None
        assert await client.keys("sc:adapter:*") == []
    finally:
        await client.aclose()


async def test_redis_announces_every_change_to_a_subscribed_follower(
        redis_server: RedisServer) -> None:
    redis_server.flush()
    client = connect(redis_server.url, timeout_s=2)
    registry = RedisRegistry(client)
    changes = registry.changes()
    try:
        assert await anext(changes) == ""  # subscribed: read the registry now
        await registry.register(entry("a"), FILES)
        await registry.register(entry("b", "lora-2", stored=False), None)
        await registry.unregister("a")
        heard = [await asyncio.wait_for(anext(changes), 5) for _ in range(3)]
        assert heard == ["a", "b", "a"]
    finally:
        await changes.aclose()
        await client.aclose()
