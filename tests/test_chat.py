"""The chat service without any transport (app/chat.py, app/replies/live.py): turns, how a
reply ends, and resuming it at any point, live or long after."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.admission import Admission
from app.chat import ChatService
from app.errors import (
    ContextTooLong,
    InvalidRequest,
    MessageNotFound,
    NotFound,
    NotReady,
    QueueFull,
    ReplyInFlight,
)
from app.lifecycle import Lifecycle
from app.served_models import ServedModels
from app.sessions.memory import MemorySessionStore
from app.streams import Event
from app.streams.memory import MemoryReplyLogs
from tests.fakes import ScriptedEngine
from tests.waiting import until

TOKENS = [f"t{i} " for i in range(30)]


@pytest.fixture
async def chat() -> AsyncIterator[ChatService]:
    engine = ScriptedEngine(tokens=TOKENS)
    service = ChatService(engine, MemorySessionStore(), MemoryReplyLogs(), Lifecycle(engine),
                          Admission(max_active=8, max_queue=8, max_prefilling=4),
                          default_max_tokens=64, orphan_grace_s=0.1,
                          models=ServedModels(engine, ("alias",)))
    await service.start()
    yield service
    await service.shutdown()


def prompt_text(ids: list[int]) -> str:
    """The text of a prompt the scripted engine received (its template: one id per char)."""
    return "".join(chr(i) for i in ids if i > 3)


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
    await until(lambda: len(live.log.events) > 6)  # past event 5, and still going
    assert not live.log.finished
    resumed = await events_of(await chat.follow_reply(sid, live.message.id, after=5))
    assert [e.seq for e in resumed] == list(range(6, 32))


async def test_cancel_keeps_the_partial_text_and_ends_the_stream(chat: ChatService) -> None:
    chat.engine.delay_s = 0.01  # type: ignore[attr-defined]
    sid = (await chat.create_session()).id
    live = await chat.post_message(sid, "count", transport="test")
    follower = asyncio.create_task(events_of(live.log.follow()))
    await until(lambda: len(live.log.events) > 3)  # a few tokens in
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
    await until(lambda: len(live.log.events) > 3)  # a few tokens in
    task = live.task
    assert task is not None
    task.cancel()
    await until(lambda: live.ending)  # the reply stopped and is storing itself
    task.cancel()  # e.g. shutdown, right then
    await live.ended.wait()
    await asyncio.wait([task])  # and its own end (a second end would start from there)
    events = await follower
    assert [e.type for e in events].count("done") == 1
    assert chat.lifecycle.generations == 0
    assert (await chat.get_message(sid, live.message.id)).status == "cancelled"


# -- replacing a turn (regenerate, edit) --------------------------------------------------------

async def two_turns(chat: ChatService) -> tuple[str, list[str]]:
    """A session with two finished turns; its message ids, oldest first."""
    sid = (await chat.create_session(system="S")).id
    for content in ("first question", "second question"):
        live = await chat.post_message(sid, content, transport="test")
        await live.ended.wait()
    return sid, [m.id for m in (await chat.get_session(sid)).messages]


async def test_replacing_a_turn_drops_it_and_all_after_it_from_the_prompt_and_the_session(
        chat: ChatService) -> None:
    sid, ids = await two_turns(chat)
    engine: ScriptedEngine = chat.engine  # type: ignore[assignment]
    live = await chat.post_message(sid, "edited question", transport="test", replaces=ids[0])
    await live.ended.wait()
    prompt = prompt_text(engine.prompts[-1])
    assert prompt.startswith("S") and prompt.endswith("edited question")
    for gone in ("first question", "second question", "t0"):  # t0: the replies' text
        assert gone not in prompt
    messages = (await chat.get_session(sid)).messages
    assert [(m.role, m.content) for m in messages] == [
        ("user", "edited question"), ("assistant", "".join(TOKENS))]
    assert messages[1].id == live.message.id
    for old in ids:
        with pytest.raises(MessageNotFound):
            await chat.get_message(sid, old)
    with pytest.raises(MessageNotFound):
        await chat.follow_reply(sid, ids[3])  # a replaced reply's stream is gone too


async def test_regenerating_the_last_reply_keeps_the_turns_before(chat: ChatService) -> None:
    sid, ids = await two_turns(chat)
    engine: ScriptedEngine = chat.engine  # type: ignore[assignment]
    live = await chat.post_message(sid, "second question", transport="test", replaces=ids[2])
    await live.ended.wait()
    messages = (await chat.get_session(sid)).messages
    assert [m.id for m in messages[:2]] == ids[:2]
    assert [m.id for m in messages[2:]] != ids[2:] and len(messages) == 4
    prompt = prompt_text(engine.prompts[-1])
    assert prompt.count("second question") == 1 and "first question" in prompt


async def test_replaces_takes_a_user_turn_of_this_session(chat: ChatService) -> None:
    sid, ids = await two_turns(chat)
    with pytest.raises(InvalidRequest) as reply:
        await chat.post_message(sid, "x", transport="test", replaces=ids[1])
    with pytest.raises(MessageNotFound) as unknown:
        await chat.post_message(sid, "x", transport="test", replaces="msg_nope")
    assert (reply.value.code, reply.value.param) == ("invalid_request", "replaces")
    assert (unknown.value.code, unknown.value.param) == ("message_not_found", "replaces")
    assert [m.id for m in (await chat.get_session(sid)).messages] == ids


async def test_a_refused_replacement_removes_nothing(chat: ChatService) -> None:
    sid, ids = await two_turns(chat)
    with pytest.raises(ContextTooLong):  # the context check
        await chat.post_message(sid, "x" * 300, transport="test", replaces=ids[2])
    assert [m.id for m in (await chat.get_session(sid)).messages] == ids
    chat.engine.delay_s = 0.01  # type: ignore[attr-defined]
    live = await chat.post_message(sid, "third", transport="test")
    with pytest.raises(ReplyInFlight):  # the claim
        await chat.post_message(sid, "again", transport="test", replaces=ids[0])
    await chat.cancel_message(sid, live.message.id)
    assert [m.id for m in (await chat.get_session(sid)).messages][:4] == ids


async def test_a_replacement_refused_by_a_full_queue_removes_nothing() -> None:
    engine = ScriptedEngine(tokens=["w"] * 100, delay_s=0.01)
    chat = ChatService(engine, MemorySessionStore(), MemoryReplyLogs(), Lifecycle(engine),
                       Admission(max_active=1, max_queue=0, max_prefilling=1),
                       default_max_tokens=4)
    await chat.start()
    try:
        sid = (await chat.create_session()).id
        live = await chat.post_message(sid, "q", transport="test")
        await live.ended.wait()
        ids = [m.id for m in (await chat.get_session(sid)).messages]
        busy = (await chat.create_session()).id
        await chat.post_message(busy, "hold the engine", transport="test")
        with pytest.raises(QueueFull):
            await chat.post_message(sid, "q", transport="test", replaces=ids[0])
        assert [m.id for m in (await chat.get_session(sid)).messages] == ids
        assert await chat.reply_in_flight(sid) is None  # its claim let go too
    finally:
        await chat.shutdown()


# -- a session's model and metadata -------------------------------------------------------------

async def test_a_sessions_model_writes_its_replies(chat: ChatService) -> None:
    session = await chat.create_session(model="alias")
    assert session.model == "alias"
    live = await chat.post_message(session.id, "x", transport="test")
    events = await events_of(live.log.follow())
    assert events[0].data["model"] == "alias"
    assert (await chat.get_message(session.id, live.message.id)).model == "alias"
    replayed = await events_of(await chat.follow_reply(session.id, live.message.id))
    assert replayed[0].data["model"] == "alias"
    plain = await chat.create_session()
    assert plain.model == "scripted"  # the base model
    assert {s["id"]: s["model"] for s in await chat.list_sessions()} == {
        session.id: "alias", plain.id: "scripted"}


async def test_an_unknown_model_is_not_found(chat: ChatService) -> None:
    with pytest.raises(NotFound) as created:
        await chat.create_session(model="gpt-9")
    sid = (await chat.create_session()).id
    with pytest.raises(NotFound) as changed:
        await chat.update_session(sid, {"model": "gpt-9"})
    for error in (created.value, changed.value):
        assert (error.code, error.param) == ("model_not_found", "model")
    assert (await chat.get_session(sid)).model == "scripted"
    assert await chat.list_sessions() == [
        {"id": sid, "created": (await chat.get_session(sid)).created, "title": None,
         "model": "scripted", "messages": 0}]


async def test_changes_while_a_reply_is_in_flight_apply_to_the_next(chat: ChatService) -> None:
    chat.engine.delay_s = 0.005  # type: ignore[attr-defined]
    engine: ScriptedEngine = chat.engine  # type: ignore[assignment]
    sid = (await chat.create_session(system="old system", title="t")).id
    live = await chat.post_message(sid, "one", transport="test")
    await engine.started.wait()  # the reply is in the engine, with the session as it was
    changed = await chat.update_session(sid, {"system": "new system", "model": "alias",
                                              "params": {"temperature": 0.25}})
    assert (changed.system, changed.model, changed.params, changed.title) == (
        "new system", "alias", {"temperature": 0.25}, "t")
    await live.ended.wait()
    assert (await chat.get_message(sid, live.message.id)).model == "scripted"
    nxt = await chat.post_message(sid, "two", transport="test")
    await nxt.ended.wait()
    assert nxt.message.model == "alias" and engine.params[-1].temperature == 0.25
    assert prompt_text(engine.prompts[-1]).startswith("new system")
    back = await chat.update_session(sid, {"model": None})
    assert back.model == "scripted"
