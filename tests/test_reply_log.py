"""A live reply's event log (app/streams/log.py) and the in-memory logs (app/streams/memory.py)."""

from __future__ import annotations

import asyncio
import tracemalloc

import orjson

from app.kept_json import kept_json
from app.streams.log import ReplyLog
from app.streams.memory import MemoryReplyLogs
from tests.waiting import until


async def collect(log: ReplyLog, after: int = -1) -> list[int]:
    return [e.seq async for e in log.follow(after) if e is not None]


async def test_follow_replays_then_goes_live_without_duplicates() -> None:
    log = ReplyLog("m", "s")
    log.append("start", {})
    log.append("token", {"text": "a"})
    follower = asyncio.create_task(collect(log, after=0))
    await until(lambda: log.listeners == 1)  # it replayed what there was, and waits
    log.append("token", {"text": "b"})
    log.append("done", {})
    assert await follower == [1, 2, 3]
    assert await collect(log) == [0, 1, 2, 3]  # a finished log replays completely and ends


async def test_a_follow_always_ends_with_the_terminal_event() -> None:
    """Even for a listener that says it saw the end, or beyond: it must learn the reply ended
    (a browser EventSource would otherwise reconnect forever)."""
    log = ReplyLog("m", "s")
    log.append("start", {})
    live = [asyncio.create_task(collect(log, after=after)) for after in (1, 2, 17)]
    await until(lambda: log.listeners == 3)  # all three follow it live
    log.append("token", {"text": "a"})
    log.append("done", {})
    assert [await task for task in live] == [[2], [2], [2]]
    assert await collect(log, after=2) == [2]
    assert await collect(log, after=17) == [2]


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


async def test_heartbeat_only_after_a_quiet_period_even_after_progress() -> None:
    log = ReplyLog("m", "s")
    log.report("queued", {"position": 0})
    received: list[str | None] = []

    async def listen() -> None:
        # 25x the events' pace: a loaded 2-core CI machine once stretched a 20 ms sleep past 50.
        async for event in log.follow(heartbeat_s=0.5):
            received.append(None if event is None else event.type)

    listener = asyncio.create_task(listen())
    await until(lambda: received == ["queued"])
    log.append("start", {})
    for _ in range(8):  # an event every 20 ms: never 500 ms quiet
        await asyncio.sleep(0.02)  # the pace of the events is what this test is about
        log.append("token", {"text": "a"})
    assert None not in received
    # Quiet after tokens (the progress is gone): a heartbeat comes.
    await until(lambda: received[-1] is None)
    log.append("done", {})
    await listener
    assert received[:2] == ["queued", "start"] and received[-1] == "done"
    assert received.count("token") == 8


async def test_a_cancelled_listener_does_not_stop_the_others() -> None:
    log = ReplyLog("m", "s")
    first = asyncio.create_task(collect(log))
    second = asyncio.create_task(collect(log))
    await until(lambda: log.listeners == 2)  # both wait for the first event
    first.cancel()
    log.append("start", {})
    log.append("done", {})
    assert await second == [0, 1]


async def test_a_released_log_is_no_longer_found_but_its_followers_read_on() -> None:
    logs = MemoryReplyLogs()
    log = logs.open("m", "s")
    log.append("start", {})
    follower = log.follow()
    assert (await anext(follower)).seq == 0  # type: ignore[union-attr]
    log.append("done", {})
    logs.release("m")
    assert logs.get("m") is None and await logs.follow("m", "s") is None
    assert (await anext(follower)).type == "done"  # type: ignore[union-attr]


async def test_a_held_log_shows_each_event_only_once_published() -> None:
    """A log mirrored to Redis is held (app/streams/mirror.py publishes what Redis has): its
    listeners never get an event before that, nor progress before a held `start`, nor the end
    before the end is published; a log in memory publishes each event at once."""
    assert not MemoryReplyLogs().open("m", "s").held
    log = ReplyLog("m", "s")
    log.held = True
    received: list[str] = []

    async def listen(after: int) -> None:
        async for event in log.follow(after):
            assert event is not None
            received.append(event.type)

    listener = asyncio.create_task(listen(-1))
    log.append("start", {})
    log.report("queued", {"position": 0})
    await until(lambda: log.listeners == 1)
    for _ in range(5):  # the listener had every chance to take what it was not given
        await asyncio.sleep(0)
    assert received == []
    log.publish(1)
    await until(lambda: received == ["start", "queued"])
    log.append("token", {"text": "a"})
    log.append("token", {"text": "b"})
    log.append("done", {})
    late = asyncio.create_task(collect(log, after=9))  # says it saw the end: still waits for it
    log.publish(3)
    await until(lambda: received == ["start", "queued", "token", "token"])
    await until(lambda: log.listeners == 2)
    assert not listener.done() and not late.done()
    log.publish()
    await listener
    assert received[-1] == "done" and await late == [3]


def test_a_log_keeps_each_event_in_a_few_hundred_bytes() -> None:
    """A live reply's log keeps every event until the reply ends. orjson's bytes keep a buffer
    of 4 KB and more whatever their length: kept as payloads, they were ~4.3 KB of the server's
    RSS per token event (benchmarks/stream_memory.py)."""
    tracemalloc.start()
    try:
        log = ReplyLog("m", "s")
        before = tracemalloc.get_traced_memory()[0]
        for i in range(1000):
            log.append("token", {"text": f"~{i:x};", "n": 1})
        per_event = (tracemalloc.get_traced_memory()[0] - before) / 1000
    finally:
        tracemalloc.stop()
    assert per_event < 1024, f"{per_event:.0f} bytes per event"
    assert log.events[5].payload == b'{"text":"~5;","n":1}'


def test_kept_json_is_orjson_in_bytes_of_its_own_size() -> None:
    value = {"text": "x" * 5000, "n": 1}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = kept_json(value)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept == orjson.dumps(value)
    assert held < len(kept) + 256, f"{held} bytes held for {len(kept)} bytes of JSON"
