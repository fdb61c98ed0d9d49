from __future__ import annotations

import asyncio

from app.streams.log import ReplyLog
from app.streams.memory import MemoryReplyLogs as ReplyLogs


async def collect(log: ReplyLog, after: int = -1) -> list[int]:
    return [e.seq async for e in log.follow(after) if e is not None]


async def test_follow_replays_then_goes_live_without_duplicates() -> None:
    log = ReplyLog("m", "s")
    log.append("start", {})
    log.append("token", {"text": "a"})
    follower = asyncio.create_task(collect(log, after=0))
    await asyncio.sleep(0)
    log.append("token", {"text": "b"})
    log.append("done", {})
    assert await follower == [1, 2, 3]
    assert await collect(log) == [0, 1, 2, 3]  # a finished log replays completely and ends


async def test_no_events_after_done() -> None:
    log = ReplyLog("m", "s")
    log.append("done", {})
    try:
        log.append("token", {})
    except RuntimeError:
        return
    raise AssertionError("appended after done")


async def test_orphan_callback_fires_when_last_listener_leaves_early() -> None:
    log = ReplyLog("m", "s")
    orphaned: list[int] = []
    log.on_orphaned = lambda: orphaned.append(log.listeners)
    log.append("start", {})
    first = log.follow()
    second = log.follow()
    await anext(first)
    await anext(second)
    await first.aclose()
    assert orphaned == []
    await second.aclose()
    assert orphaned == [0]


async def test_heartbeat_yields_none_while_idle() -> None:
    log = ReplyLog("m", "s")
    follower = log.follow(heartbeat_s=0.01)
    assert await anext(follower) is None
    log.append("done", {})
    event = await anext(follower)
    assert event is not None and event.type == "done"
    await follower.aclose()


def test_finished_logs_are_pruned_beyond_the_cap() -> None:
    logs = ReplyLogs(max_finished=2)
    for i in range(5):
        logs.open(f"m{i}", "s").append("done", {})
    logs.open("live", "s")
    assert logs.get("m0") is None and logs.get("m4") is not None and logs.get("live") is not None
