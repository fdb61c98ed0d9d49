"""Each replica's engine follows the adapters' registry (app/adapters/serving.py): two
replicas, each with a scripted engine and its own cache folder, over one real Redis. An
adapter loaded on one is served by the other from its own copy of the files, an unload
reaches both, a replica that missed the announcements converges when it reads the registry
again, an engine restarted in place gets them back, and memory mode serves by path as before."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.adapters import Adapters, Entry, MemoryRegistry, RedisRegistry
from app.adapters.folders import COMPLETE
from app.adapters.registry import CHANNEL, ENTRIES
from app.errors import InvalidRequest
from app.redis_calls import connect
from tests.fakes import ScriptedEngine
from tests.redis_server import RedisServer

WEIGHTS = b"\x01\x02" * 500


def adapter_folder(root: Path, name: str = "adapter", weights: bytes = WEIGHTS) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
    (folder / "adapter_model.safetensors").write_bytes(weights)
    return folder


class Replica:
    def __init__(self, adapters: Adapters, engine: ScriptedEngine) -> None:
        self.adapters, self.engine = adapters, engine

    def names(self) -> set[str]:
        return {a.name for a in self.engine.loras.values()}


@pytest.fixture
async def pair(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[tuple[Replica, Replica]]:
    redis_server.flush()
    client = connect(redis_server.url, timeout_s=2)
    replicas = []
    for name in ("a", "b"):
        engine = ScriptedEngine()
        await engine.start()
        replicas.append(Replica(Adapters(engine, enabled=True, max_rank=16,
                                         registry=RedisRegistry(client),
                                         folder=tmp_path / name / "lora"), engine))
    yield replicas[0], replicas[1]
    for replica in replicas:
        await replica.adapters.close()
    await client.aclose()


async def until(check: object, timeout_s: float = 5.0) -> None:
    """Until `check()` is true: a follower is another task, woken by Redis."""
    async with asyncio.timeout(timeout_s):
        while not check():  # type: ignore[operator]  # noqa: ASYNC110 (no event to wait on)
            await asyncio.sleep(0.01)


async def test_a_load_and_an_unload_reach_the_other_replica(
        pair: tuple[Replica, Replica], tmp_path: Path) -> None:
    a, b = pair
    b.adapters.follow()
    redis = a.adapters.registry.redis  # type: ignore[attr-defined]
    async with asyncio.timeout(5):  # b listens: what follows reaches it as announcements
        while (await redis.pubsub_numsub(CHANNEL))[0][1] == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    folder = adapter_folder(tmp_path / "only-on-a")
    await a.adapters.add("tuned", folder)
    await until(lambda: b.names() == {"tuned"})
    [on_b] = b.engine.loras.values()
    # b's own copy, written from Redis; a's folder is never read by b.
    copy = Path(on_b.path)
    assert copy.parent == tmp_path / "b" / "lora" and (copy / COMPLETE).is_file()
    assert (copy / "adapter_model.safetensors").read_bytes() == WEIGHTS
    [served_a], [served_b] = a.adapters.all(), b.adapters.all()
    assert served_a.entry == served_b.entry and served_b.entry.root == str(folder)

    await a.adapters.remove("tuned")
    await until(lambda: b.names() == set())
    assert not await asyncio.to_thread(copy.exists) and a.names() == set()


async def test_a_replica_that_missed_the_announcements_converges(
        pair: tuple[Replica, Replica], tmp_path: Path) -> None:
    a, b = pair  # b not following: as if every announcement was lost
    await a.adapters.add("x", adapter_folder(tmp_path / "x"))
    await a.adapters.add("y", adapter_folder(tmp_path / "y"))
    await b.adapters.sync()
    assert b.names() == {"x", "y"}
    # y unloaded and loaded again with other weights, x unloaded: b still serves the old ones.
    await a.adapters.remove("y")
    await a.adapters.remove("x")
    await a.adapters.add("y", adapter_folder(tmp_path / "y2", weights=b"new"))
    assert b.names() == {"x", "y"}
    await b.adapters.sync()
    [y] = b.engine.loras.values()
    assert y.name == "y" and (Path(y.path) / "adapter_model.safetensors").read_bytes() == b"new"


async def test_an_engine_restarted_in_place_gets_them_back(
        pair: tuple[Replica, Replica], tmp_path: Path) -> None:
    a, b = pair
    await a.adapters.add("x", adapter_folder(tmp_path / "x"))
    await b.adapters.sync()
    b.engine.die()
    await b.engine.restart()
    await a.adapters.add("y", adapter_folder(tmp_path / "y"))  # while b's engine restarted
    assert b.names() == set()
    await b.adapters.restore()
    assert b.names() == {"x", "y"}


async def test_an_adapter_no_replica_can_load_is_said_once_and_left_out(
        pair: tuple[Replica, Replica], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a, b = pair
    # Shared by path only (as one too large for Redis), and the path is not there for b.
    await a.adapters.registry.register(
        Entry(name="far", version="lora-far", root=str(tmp_path / "broken"), created=1), None)
    await b.adapters.sync()
    await b.adapters.sync()
    assert b.names() == set()
    assert caplog.text.count("LoRA adapter far is not served on this replica") == 1


async def test_memory_mode_serves_by_path_and_names_are_taken_once(tmp_path: Path) -> None:
    engine = ScriptedEngine()
    await engine.start()
    adapters = Adapters(engine, enabled=True, max_rank=16, registry=MemoryRegistry(),
                        folder=tmp_path / "lora")
    folder = adapter_folder(tmp_path)
    loaded = await adapters.add("m", folder)
    assert loaded.path == str(folder) and not (tmp_path / "lora").exists()
    with pytest.raises(InvalidRequest):
        await adapters.add("n", tmp_path / "missing")
    await adapters.remove("m")
    assert engine.loras == {}


async def test_a_follower_whose_subscription_broke_reads_the_registry_again(
        pair: tuple[Replica, Replica], tmp_path: Path) -> None:
    a, b = pair
    redis = a.adapters.registry.redis  # type: ignore[attr-defined]
    redis.health.start()  # as the service does: the store is seen back after a failed call
    b.adapters.follow()
    async with asyncio.timeout(5):
        while (await redis.pubsub_numsub(CHANNEL))[0][1] == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    # A change whose announcement b never hears: registered without one, b's subscription cut.
    entry = Entry(name="quiet", version="lora-quiet", root=str(tmp_path / "gone"), created=1,
                  stored=True)
    await redis.hset("sc:adapter:lora-quiet", mapping={"adapter_config.json": b'{"r": 8}'})
    await redis.hsetnx(ENTRIES, "quiet", entry.model_dump_json())
    await redis.client_kill_filter(_type="pubsub")
    try:
        await until(lambda: b.names() == {"quiet"}, timeout_s=10)
    finally:
        await redis.health.close()
