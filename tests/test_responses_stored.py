"""Stored responses (app/responses/stored.py): chains, and a dead replica's response repaired."""

from __future__ import annotations

import pytest

from app.errors import Conflict, InvalidRequest
from app.records import MemoryRecords
from app.responses.stored import KIND, history, repaired

ERROR = {"code": "interrupted", "message": "the replica running this response stopped"}


def record(status: str, owner: str | None = "alice") -> dict[str, object]:
    return {"response": {"id": "resp_1", "status": status}, "owner": owner,
            "messages": [{"role": "user", "content": "Hi"}]}


async def test_a_chain_goes_on_from_a_finished_response_of_the_same_key() -> None:
    records = MemoryRecords(10, 60.0)
    assert await history(records, None, "alice") == []
    await records.put(KIND, "resp_1", record("completed"))
    assert await history(records, "resp_1", "alice") == [{"role": "user", "content": "Hi"}]
    with pytest.raises(InvalidRequest) as other_key:
        await history(records, "resp_1", "bob")
    assert other_key.value.code == "previous_response_not_found"
    await records.put(KIND, "resp_1", record("in_progress"))
    with pytest.raises(Conflict) as running:
        await history(records, "resp_1", "alice")
    assert running.value.code == "response_in_progress"


async def test_a_response_left_in_progress_by_a_dead_replica_is_failed_once() -> None:
    records = MemoryRecords(10, 60.0)
    asked: list[str] = []

    async def running(response_id: str) -> bool:
        asked.append(response_id)
        return False  # its lease is gone

    await records.put(KIND, "resp_1", record("in_progress"))
    fixed = await repaired(records, record("in_progress"), running, ERROR)
    assert fixed["response"] == {"id": "resp_1", "status": "failed", "error": ERROR}
    assert (await records.get(KIND, "resp_1"))["response"]["status"] == "failed"
    done = await repaired(records, record("completed"), running, ERROR)
    assert done["response"]["status"] == "completed" and asked == ["resp_1"]  # not asked


async def test_a_response_that_ended_meanwhile_is_left_as_it_ended() -> None:
    records = MemoryRecords(10, 60.0)

    async def gone(_: str) -> bool:
        return False

    await records.put(KIND, "resp_1", record("completed"))  # stored, then its lease let go
    kept = await repaired(records, record("in_progress"), gone, ERROR)
    assert kept["response"]["status"] == "completed"
