"""The chat service without any transport (app/chat.py, app/replies/live.py): turns, how a
reply ends, and resuming it at any point, live or long after."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.admission import Admission
from app.chat import ChatService
from app.errors import InvalidRequest, NotReady, ReplyInFlight
from app.lifecycle import Lifecycle
from app.sessions.memory import MemorySessionStore
from app.streams import Event
from app.streams.memory import MemoryReplyLogs
from tests.fakes import ScriptedEngine

TOKENS = [f"t{i} " for i in range(30)]


@pytest.fixture
async def chat() -> AsyncIterator[ChatService]:
    engine = ScriptedEngine(tokens=TOKENS)
    service = ChatService(engine, MemorySessionStore(), MemoryReplyLogs(), Lifecycle(engine),
                          Admission(max_active=8, max_queue=8, max_prefilling=4),
                          default_max_tokens=64, orphan_grace_s=0.1)
    await service.start()
    yield service
    await service.shutdown()


async def events_of(listened: AsyncIterator[Event | None]) -> list[Event]:
    return [event async for event in listened if event is not None]


async def finished_reply(chat: ChatService) -> tuple[str, str, list[Event]]:
    sid = (await chat.create_session(system="S")).id
    live = await chat.post_message(sid, "count", transport="test")
    return sid, live.message.id, await events_of(live.log.follow())


async def test_a_turn_is_stored_before_its_done_event(chat: ChatService) -> None:
    sid, mid, events = await finished_reply(chat)
    assert [e.type for e in events] == ["start", *["token"] * 30, "done"]
    stored = await chat.get_message(sid, mid)
    assert stored.status == "done" and stored.content == "".join(TOKENS)
    assert stored.usage == events[-1].data["usage"]


async def test_resuming_after_the_log_is_gone_gets_the_rest_under_the_original_ids(
        chat: ChatService) -> None:
    """Issue 7, bug 1: a finished reply's log expires; a client resuming after id 17 must get
    events 18.. with their original ids and text, ending with the terminal event."""
    sid, mid, live = await finished_reply(chat)
    await chat.logs.close()  # every log gone, as after expiry
    resumed = await events_of(await chat.follow_reply(sid, mid, after=17))
    assert [(e.seq, e.type, e.data) for e in resumed] == [
        (e.seq, e.type, e.data) for e in live[18:]]
    # Past the end, a resume still ends with the terminal event under its id.
    again = await events_of(await chat.follow_reply(sid, mid, after=40))
    assert [(e.seq, e.type) for e in again] == [(31, "done")]


async def test_a_reply_followed_live_from_the_middle(chat: ChatService) -> None:
    chat.engine.delay_s = 0.005  # type: ignore[attr-defined]
    sid = (await chat.create_session()).id
    live = await chat.post_message(sid, "count", transport="test")
    await asyncio.sleep(0.05)
    resumed = await events_of(await chat.follow_reply(sid, live.message.id, after=5))
    assert [e.seq for e in resumed] == list(range(6, 32))


async def test_cancel_keeps_the_partial_text_and_ends_the_stream(chat: ChatService) -> None:
    chat.engine.delay_s = 0.01  # type: ignore[attr-defined]
    sid = (await chat.create_session()).id
    live = await chat.post_message(sid, "count", transport="test")
    follower = asyncio.create_task(events_of(live.log.follow()))
    await asyncio.sleep(0.05)
    cancelled = await chat.cancel_message(sid, live.message.id)
    events = await follower
    assert cancelled.status == "cancelled" and 0 < len(cancelled.content) < len("".join(TOKENS))
    assert events[-1].type == "done" and events[-1].data["finish_reason"] == "cancelled"
    replayed = await events_of(await chat.follow_reply(sid, live.message.id))
    assert [e.data for e in replayed] == [e.data for e in events if e.numbered]


async def test_an_engine_failure_is_stored_as_error_with_its_code(chat: ChatService) -> None:
    async def failing(*args: object, **kw: object) -> AsyncIterator[object]:
        raise RuntimeError("boom")
        yield

    chat.engine.stream = failing  # type: ignore[method-assign, assignment]
    sid = (await chat.create_session()).id
    live = await chat.post_message(sid, "x", transport="test")
    events = await events_of(live.log.follow())
    assert events[-1].type == "error" and events[-1].data["code"] == "engine_error"
    stored = await chat.get_message(sid, live.message.id)
    assert stored.status == "error" and stored.error == events[-1].data
    replayed = await events_of(await chat.follow_reply(sid, live.message.id, after=0))
    assert [(e.seq, e.type, e.data) for e in replayed] == [(1, "error", events[-1].data)]


async def test_one_reply_at_a_time_and_not_while_draining(chat: ChatService) -> None:
    chat.engine.delay_s = 0.01  # type: ignore[attr-defined]
    sid = (await chat.create_session()).id
    await chat.post_message(sid, "one", transport="test")
    with pytest.raises(ReplyInFlight):
        await chat.post_message(sid, "two", transport="test")
    assert chat.lifecycle.generations == 1
    chat.lifecycle.drain()
    other = (await chat.create_session()).id
    with pytest.raises(NotReady) as info:
        await chat.post_message(other, "three", transport="test")
    assert info.value.retry_after_s > 0


async def test_only_replies_have_streams(chat: ChatService) -> None:
    sid, _, _ = await finished_reply(chat)
    user = (await chat.get_session(sid)).messages[0]
    with pytest.raises(InvalidRequest):
        await chat.follow_reply(sid, user.id)
    with pytest.raises(InvalidRequest):
        await chat.cancel_message(sid, user.id)


async def test_a_reply_cancelled_before_it_ever_ran_still_ends(chat: ChatService) -> None:
    """Cancelled before its task's first step (a cancel frame right behind the message): it
    is stored as cancelled and its session takes the next message."""
    sid = (await chat.create_session()).id
    live = await chat.post_message(sid, "one", transport="test")
    follower = live.log.follow()
    cancelled = await chat.cancel_message(sid, live.message.id)
    assert (cancelled.status, cancelled.content) == ("cancelled", "")
    events = await events_of(await chat.follow_reply(sid, live.message.id))
    assert [(e.seq, e.type) for e in events] == [(0, "start"), (1, "done")]
    assert [(e.seq, e.type) for e in await events_of(follower)] == [(0, "start"), (1, "done")]
    assert chat.lifecycle.idle
    nxt = await chat.post_message(sid, "two", transport="test")
    assert (await events_of(nxt.log.follow()))[-1].data["finish_reason"] == "stop"


async def test_a_second_cancel_while_the_reply_is_being_stored_ends_it_once(
        chat: ChatService) -> None:
    chat.engine.delay_s = 0.01  # type: ignore[attr-defined]
    sid = (await chat.create_session()).id
    live = await chat.post_message(sid, "count", transport="test")
    follower = asyncio.create_task(events_of(live.log.follow()))
    await asyncio.sleep(0.05)
    assert live.task is not None
    live.task.cancel()
    await asyncio.sleep(0)  # the reply stops and starts storing itself
    live.task.cancel()  # e.g. shutdown, right then
    await live.ended.wait()
    await asyncio.sleep(0.05)
    events = await follower
    assert [e.type for e in events].count("done") == 1
    assert chat.lifecycle.generations == 0
    assert (await chat.get_message(sid, live.message.id)).status == "cancelled"
