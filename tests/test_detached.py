"""Detached streams (app/replies/detached.py): a generation that outlives its client, logged
under its id. The log starts with the key that started it and ends with `done` however the
generation ends (it finished, it failed, it was cancelled here or from another replica, it was
orphaned past the grace, the server shut down); only that key follows it; a finished one stays
resumable for `keep_s`. A "replica" is a `DetachedStreams` sharing the reply logs and the lease
store with another, as replicas share Redis."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

import orjson
import pytest

from app.admission import Admission
from app.engine.base import GenerationParams
from app.errors import NotFound
from app.generation import Caller, Gate, Generation
from app.leases import Leases, MemoryLeaseStore
from app.lifecycle import Lifecycle
from app.replies.detached import DetachedStreams, Item, logged_as
from app.streams import Event, ReplyLog
from app.streams.memory import MemoryReplyLogs
from tests.fakes import ScriptedEngine
from tests.waiting import TIMEOUT_S, until

GRACE_S = 0.05  # the orphan grace, where elapsing is what a test is about; else LONG_S
LONG_S = 60.0  # a grace or a keep that does not run out during a test

Make = Callable[..., DetachedStreams]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    """Makes one replica's streams after another, all over the same logs and leases."""
    logs, store = MemoryReplyLogs(), MemoryLeaseStore()
    made: list[DetachedStreams] = []

    def new(orphan_grace_s: float = LONG_S, keep_s: float = LONG_S) -> DetachedStreams:
        made.append(DetachedStreams(logs, Leases(store), orphan_grace_s=orphan_grace_s,
                                    keep_s=keep_s))
        return made[-1]

    yield new
    for streams in made:
        await streams.close()
        await streams.leases.close()


class Ends:
    """An `on_end` that counts its calls, and notes whether the log had ended at the first."""

    def __init__(self) -> None:
        self.calls = 0
        self.log: ReplyLog | None = None
        self.log_had_ended: bool | None = None

    async def __call__(self) -> None:
        self.calls += 1
        if self.log_had_ended is None and self.log is not None:
            self.log_had_ended = self.log.finished


async def script(*items: Item, hold: asyncio.Event | None = None,
                 then: tuple[Item, ...] = (), fail: Exception | None = None
                 ) -> AsyncIterator[Item]:
    """`items`; then, with `hold`, waits until it is set (for ever, if never), yields `then`;
    then raises `fail`, if any."""
    for item in items:
        yield item
    if hold is not None:
        await hold.wait()
    for item in then:
        yield item
    if fail is not None:
        raise fail


async def everything(events: AsyncIterator[Event | None]) -> list[Event]:
    """What a follower gets, to the terminal event, heartbeats left out."""
    return [event async for event in events if event is not None]


async def stopped(streams: DetachedStreams, stream_id: str) -> None:
    """Until the stream is no longer generated (its end written, its lease let go): nothing
    public says when, so `until`'s poll, for an async condition."""
    async with asyncio.timeout(TIMEOUT_S):
        while await streams.running(stream_id):  # noqa: ASYNC110
            await asyncio.sleep(0)


class Engine:
    """A chat completion's generation on a scripted engine that holds every prompt before its
    first token until `engine.proceed` is set: its chunks are what a detached stream runs, and
    its `cause` says why it was stopped (app/generation.py)."""

    def __init__(self) -> None:
        self.engine = ScriptedEngine(tokens=["a", "b"])
        self.engine.proceed = asyncio.Event()
        lifecycle = Lifecycle(self.engine)
        self.gate = Gate(self.engine, lifecycle,
                         Admission(max_active=4, max_queue=4, max_prefilling=4))

    async def open(self, request_id: str) -> Generation:
        return await self.gate.open([1, 2, 3], GenerationParams(max_tokens=16),
                                    Caller(request_id, time.monotonic()))

    @staticmethod
    async def chunks(generation: Generation) -> AsyncIterator[Item]:
        async for delta in generation.deltas():
            if delta is not None:
                yield {"choices": [{"index": delta.index, "delta": {"content": delta.text}}]}


@pytest.mark.parametrize(("item", "logged"), [
    ({"id": "chatcmpl-1", "choices": []}, "chunk"),  # a chat completion chunk: no type
    ({"type": "response.output_text.delta", "delta": "hi"}, "response.output_text.delta"),
    ({"type": "start"}, "chunk"),  # the log's own types are never an item's
    ({"type": "done"}, "chunk"),
    ({"type": "error"}, "chunk"),
    ({"type": 7}, "chunk"),  # not a type name at all
])
def test_an_item_is_logged_under_its_own_type_unless_it_has_none(item: Item, logged: str
                                                                   ) -> None:
    assert logged_as(item) == logged


async def test_the_log_is_start_with_the_owner_then_each_item_then_done(make: Make) -> None:
    streams = make()
    items: list[Item] = [
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "hi"}}]},
        {"type": "response.output_text.delta", "delta": "hi", "sequence_number": 0},
        {"type": "done", "note": "an item's, not the log's"},
    ]
    ends = Ends()
    log = ends.log = await streams.start("s", "key-a", script(*items), ends)
    events = await everything(await streams.follow("s", owner="key-a"))
    assert [(e.seq, e.type, e.data) for e in events] == [
        (0, "start", {"owner": "key-a"}),
        (1, "chunk", items[0]),
        (2, "response.output_text.delta", items[1]),
        (3, "chunk", items[2]),  # logged as a chunk: the log's own `done` is the end
        (4, "done", {})]
    assert events[1].payload == orjson.dumps(items[0])  # encoded once, sent as it is
    assert (ends.calls, ends.log_had_ended) == (1, False)  # before a follower learns it ended
    await stopped(streams, "s")
    assert log.finished and ends.calls == 1


async def test_a_follower_resumes_after_what_it_saw_without_duplicates(make: Make) -> None:
    streams = make()
    hold = asyncio.Event()
    log = await streams.start("s", None, script({"n": 1}, {"n": 2}, hold=hold, then=({"n": 3},)),
                              Ends())
    await until(lambda: len(log.events) == 3)  # start, then two items: it waits
    resumed = asyncio.create_task(everything(await streams.follow("s", 1)))
    await until(lambda: log.listeners == 1)  # it replayed seq 2, and waits for more
    hold.set()
    assert [(e.seq, e.type) for e in await resumed] == [(2, "chunk"), (3, "chunk"), (4, "done")]
    assert [e.data for e in log.events[2:4]] == [{"n": 2}, {"n": 3}]
    # Resumed again once it ended: the rest, from its kept log.
    assert [e.seq for e in await everything(await streams.follow("s", 2))] == [3, 4]


@pytest.mark.parametrize("where", ["here", "another replica"])
@pytest.mark.parametrize(("started_by", "asking", "sees"), [
    ("key-a", "key-a", True),
    ("key-a", "key-b", False),  # another key's stream: as if it did not exist
    ("key-a", None, True),  # no keys configured: everything is visible
    (None, "key-b", False),
])
async def test_only_the_key_that_started_a_stream_follows_it(
        make: Make, where: str, started_by: str | None, asking: str | None, sees: bool) -> None:
    streams = make()
    hold = asyncio.Event()
    await streams.start("s", started_by, script({"n": 1}, hold=hold), Ends())
    follower = streams if where == "here" else make()  # there, read back from the logs
    if sees:
        events = await follower.follow("s", owner=asking)
        assert (await anext(events)).type == "start"  # type: ignore[union-attr]
        hold.set()
        assert [e.type for e in await everything(events)] == ["chunk", "done"]
    else:
        with pytest.raises(NotFound) as refused:
            await follower.follow("s", owner=asking)
        assert refused.value.code == "stream_not_found"
        hold.set()
    with pytest.raises(NotFound):
        await follower.follow("unknown", owner=asking)


@pytest.mark.parametrize("where", ["here", "another replica"])
async def test_cancel_stops_the_generation_and_the_log_still_ends(make: Make, where: str
                                                                    ) -> None:
    streams, fake = make(), Engine()
    generation = await fake.open("s")
    ends = Ends()
    log = await streams.start("s", None, fake.chunks(generation), ends)
    await fake.engine.started.wait()  # held before its first token: it would run for ever
    assert await streams.running("s")
    canceller = streams if where == "here" else make()  # relayed through the lease
    await canceller.cancel("s")  # returns once it has ended
    assert generation.cause == "cancel" and fake.engine.aborted == ["s"]
    assert [e.type for e in log.events] == ["start", "done"] and ends.calls == 1
    assert not await streams.running("s") and not await canceller.running("s")


async def test_a_stream_nobody_follows_is_stopped_after_the_orphan_grace(make: Make) -> None:
    streams, fake = make(orphan_grace_s=GRACE_S), Engine()
    generation = await fake.open("s")
    ends = Ends()
    log = await streams.start("s", None, fake.chunks(generation), ends)  # its client left at once
    await stopped(streams, "s")
    assert generation.cause == "client_left" and fake.engine.aborted == ["s"]
    assert [e.type for e in log.events] == ["start", "done"] and ends.calls == 1


async def test_a_followed_stream_outlives_the_grace_until_its_follower_leaves(make: Make
                                                                             ) -> None:
    streams, fake = make(orphan_grace_s=GRACE_S), Engine()
    followed, witness = await fake.open("followed"), await fake.open("witness")
    await streams.start("followed", None, fake.chunks(followed), Ends())
    follower = await streams.follow("followed")
    assert (await anext(follower)).type == "start"  # type: ignore[union-attr]
    await streams.start("witness", None, fake.chunks(witness), Ends())  # nobody follows it
    await stopped(streams, "witness")  # its grace, started after the other's, ran out
    assert witness.cause == "client_left"
    assert await streams.running("followed")
    await follower.aclose()  # type: ignore[attr-defined]  # its last follower left
    await stopped(streams, "followed")
    assert followed.cause == "client_left" and sorted(fake.engine.aborted) == [
        "followed", "witness"]


async def test_a_background_stream_runs_with_no_follower_past_the_grace(make: Make) -> None:
    streams, fake = make(orphan_grace_s=GRACE_S), Engine()
    background, witness = await fake.open("background"), await fake.open("witness")
    log = await streams.start("background", None, fake.chunks(background), Ends(),
                              background=True)
    await streams.start("witness", None, fake.chunks(witness), Ends())
    await stopped(streams, "witness")  # the grace ran out, for the background one too
    assert await streams.running("background") and background.cause is None
    fake.engine.proceed.set()  # type: ignore[union-attr]  # it generates: it ends by itself
    await stopped(streams, "background")
    assert background.cause is None
    assert [e.type for e in log.events] == ["start", "chunk", "chunk", "done"]


async def test_an_item_source_that_fails_still_ends_the_log(
        make: Make, caplog: pytest.LogCaptureFixture) -> None:
    streams = make()
    ends = Ends()
    caplog.set_level(logging.ERROR, "streamchat.replies")
    log = await streams.start("s", None, script({"n": 1}, fail=RuntimeError("engine died")), ends)
    events = await everything(await streams.follow("s"))
    assert [(e.type, e.data) for e in events] == [
        ("start", {"owner": None}), ("chunk", {"n": 1}), ("done", {})]
    await stopped(streams, "s")
    assert ends.calls == 1 and log.finished
    assert [r.getMessage() for r in caplog.records] == ["detached stream s failed"]


async def test_a_finished_stream_is_forgotten_after_keep_s(make: Make) -> None:
    kept, forgetful = make(keep_s=LONG_S), make(keep_s=0.0)
    for streams, stream_id in ((kept, "kept"), (forgetful, "forgotten")):
        await streams.start(stream_id, "key", script({"n": 1}), Ends())
        await stopped(streams, stream_id)
    replayed = await everything(await kept.follow("kept", owner="key"))
    assert [e.type for e in replayed] == ["start", "chunk", "done"]
    with pytest.raises(NotFound):  # it ended no later than now, and is kept for no time
        await forgetful.follow("forgotten", owner="key")
    assert not await forgetful.running("forgotten")  # forgotten, and its lease let go


async def test_a_deleted_stream_is_forgotten_once_it_ended(make: Make) -> None:
    streams = make(keep_s=LONG_S)
    await streams.start("ended", "key", script({"n": 1}), Ends())
    await stopped(streams, "ended")
    running = await streams.start("running", "key", script({"n": 1}, hold=asyncio.Event()),
                                  Ends(), background=True)
    await until(lambda: len(running.events) == 2)
    streams.forget("ended")
    streams.forget("running")  # still generated: a delete cancels it first
    with pytest.raises(NotFound):
        await streams.follow("ended", owner="key")
    assert await streams.running("running")
    await streams.close()


async def test_close_stops_what_is_generated(make: Make) -> None:
    streams, fake = make(), Engine()
    generation = await fake.open("chat")
    chat_ends, items_ends = Ends(), Ends()
    chat = await streams.start("chat", None, fake.chunks(generation), chat_ends)
    items = await streams.start("items", None, script({"n": 1}, hold=asyncio.Event()),
                                items_ends, background=True)
    await fake.engine.started.wait()
    await until(lambda: len(items.events) == 2)
    await streams.close()
    assert generation.cause == "drain"
    assert [e.type for e in chat.events] == ["start", "done"]
    assert [e.type for e in items.events] == ["start", "chunk", "done"]
    assert (chat_ends.calls, items_ends.calls) == (1, 1)
    assert not await streams.running("chat") and not await streams.running("items")


async def test_a_stream_cancelled_at_once_still_ends(make: Make) -> None:
    streams = make()
    ends = Ends()
    log = await streams.start("s", None, script({"n": 1}, hold=asyncio.Event()), ends)
    await streams.cancel("s")  # no step of the loop between: its task never ran
    assert log.finished and ends.calls == 1
    assert not await streams.running("s")
    assert await streams.leases.gone("stream", "s")
