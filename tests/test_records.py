"""Records with items and listings (app/records/): the memory and Redis records the Responses
API uses, and the disk records a memory-mode service keeps its fine-tuning jobs in, which a new
process reads back."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.records import DiskRecords, MemoryRecords, Records, RedisRecords
from tests.redis_server import RedisServer


@pytest.fixture(params=["memory", "disk", "redis"])
async def records(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Records]:
    if request.param == "memory":
        yield MemoryRecords()
    elif request.param == "disk":
        yield DiskRecords(tmp_path / "records")
    else:
        from redis.asyncio import Redis

        server: RedisServer = request.getfixturevalue("redis_server")
        redis = Redis.from_url(server.url)
        await redis.flushdb()
        yield RedisRecords(redis, idle_ttl_s=None)
        await redis.aclose()


async def test_put_get_list_delete_with_items(records: Records) -> None:
    await records.put("job", "a", {"n": 1})
    await records.put("job", "b", {"n": 2})
    await records.put("other", "c", {"n": 3})
    assert await records.get("job", "a") == {"n": 1}
    assert sorted(r["n"] for r in await records.all("job")) == [1, 2]
    assert await records.append("job", "a", {"e": 0}) == 1
    assert await records.append("job", "a", {"e": 1}) == 2
    assert await records.items("job", "a") == [{"e": 0}, {"e": 1}]
    assert await records.items("job", "a", 1) == [{"e": 1}]
    assert await records.items("job", "b") == []
    assert await records.delete("job", "a") is True
    assert await records.delete("job", "a") is False
    assert await records.get("job", "a") is None
    assert await records.items("job", "a") == []
    assert [r["n"] for r in await records.all("job")] == [2]


async def test_disk_records_outlive_the_object_and_skip_a_torn_line(tmp_path: Path) -> None:
    first = DiskRecords(tmp_path)
    await first.put("job", "a", {"n": 1})
    await first.append("job", "a", {"e": 0})
    with (tmp_path / "job" / "a.jsonl").open("ab") as out:
        out.write(b'{"e": 1')  # a crash mid-line
    again = DiskRecords(tmp_path)
    assert await again.get("job", "a") == {"n": 1}
    assert await again.items("job", "a") == [{"e": 0}]
    assert not [name for name in os.listdir(tmp_path / "job") if name.endswith(".partial")]


async def test_disk_records_refuse_names_that_are_not_file_names(tmp_path: Path) -> None:
    records = DiskRecords(tmp_path / "r")
    assert await records.get("job", "../../etc/passwd") is None
    with pytest.raises(ValueError):
        await records.put("job", "../x", {})
