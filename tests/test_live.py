"""A session reply generated here (app/replies/live.py): its progress before the first token,
its numbered token events, stored before its terminal event, and how it ends when cancelled,
abandoned by its listeners past the orphan grace, or stopped by a drain."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import REGISTRY

from app.admission import Admission
from app.engine.base import GenerationParams
from app.errors import StoreUnavailable
from app.generation import Caller, Gate
from app.lifecycle import Lifecycle
from app.replies.live import LiveReply, Replies
from app.replies.transcript import SHUT_DOWN
from app.sessions.memory import MemorySessionStore
from app.sessions.models import Message, Session
from app.streams import Event
from app.streams.memory import MemoryReplyLogs
from tests.fakes import ScriptedEngine
from tests.waiting import until

GRACE_S = 0.05  # the orphan grace: elapsing is what one test is about, so it is short


def aborted(cause: str) -> float:
    return REGISTRY.get_sample_value("streamchat_aborted_streams_total", {"cause": cause}) or 0


class Store(MemorySessionStore):
    """Notes each stored reply in `order`, which the reply's log notes its events in too."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []
        self.away = False  # as Redis unreachable: storing a reply raises StoreUnavailable

    async def update_message(self, session_id: str, message: Message) -> None:
        if self.away:
            raise StoreUnavailable("the shared store (Redis) is unreachable")
        await super().update_message(session_id, message)
        self.order.append(f"stored {message.status}")


class Harness:
    def __init__(self, engine: ScriptedEngine, *, active: int = 4) -> None:
        self.engine = engine
        self.store = Store()
        self.lifecycle = Lifecycle(engine)
        self.admission = Admission(max_active=active, max_queue=4, max_prefilling=active)
        self.gate = Gate(engine, self.lifecycle, self.admission)
        self.replies = Replies(engine, self.store, MemoryReplyLogs(), self.lifecycle,
                               orphan_grace_s=GRACE_S)
        self.stored: list[str] = []
        self.replies.on_stored = self.stored.append

    async def start(self, content: str = "hi") -> LiveReply:
        """What the chat service does for a new turn, then the reply started."""
        session = Session.new(system=None, params={}, title=None, owner=None)
        await self.store.create(session)
        reply = Message.new("assistant", "", "queued")
        await self.store.append(session.id, [Message.new("user", content, "done"), reply])
        generation = await self.gate.open(await self.engine.tokenize(content),
                                          GenerationParams(max_tokens=1000),
                                          Caller(reply.id, time.monotonic()))
        live = self.replies.start(session.id, reply, generation, transport="test",
                                  content=content)
        live.log.on_append = lambda event: self.store.order.append(event.type)
        return live

    async def stored_message(self, live: LiveReply) -> Message:
        session = await self.store.get(live.session_id)
        assert session is not None
        message = session.find(live.message.id)
        assert message is not None
        return message


async def ended(live: LiveReply) -> None:
    """Until the reply is stored and its terminal event sent (a reply that never ends fails
    the test, rather than hanging it)."""
    await asyncio.wait_for(live.ended.wait(), 5)


async def everything(live: LiveReply) -> list[Event]:
    """Every event a listener from the start gets, progress included, to the terminal one."""
    return [event async for event in live.log.follow() if event is not None]


def tokens(live: LiveReply) -> list[Event]:
    return [e for e in live.log.events if e.type == "token"]


async def test_progress_is_queued_then_prefill_then_the_tokens() -> None:
    engine = ScriptedEngine(tokens=["a", "b"])
    engine.proceed = asyncio.Event()  # the prompt stays in prefill until the test says
    h = Harness(engine, active=1)
    ahead = h.admission.enqueue("someone else")  # the engine's one place is taken
    live = await h.start("four")
    seen: list[Event] = []

    async def listen() -> None:
        async for event in live.log.follow():
            if event is not None:
                seen.append(event)

    listener = asyncio.create_task(listen())
    await until(lambda: len(seen) == 2)
    assert [(e.seq, e.type, e.data) for e in seen] == [
        (0, "start", {"message_id": live.message.id, "session_id": live.session_id,
                      "model": "scripted"}),
        (-1, "queued", {"position": 0})]  # first in the queue: nobody ahead of it
    h.admission.release(ahead)  # its place comes free: the reply enters the engine
    await until(lambda: len(seen) == 3)
    assert (seen[2].type, seen[2].data["prompt_tokens"]) == ("prefill", 5)  # "four", a BOS
    assert not engine.yielded  # before any token: the engine holds the prompt
    engine.proceed.set()
    await listener
    assert [(e.seq, e.type) for e in seen] == [
        (0, "start"), (-1, "queued"), (-1, "prefill"), (1, "token"), (2, "token"), (3, "done")]
    assert live.log.progress is None  # the first token says more than any progress


async def test_token_events_are_numbered_and_carry_the_tokens_they_took() -> None:
    # "": a token with no text of its own (e.g. part of a character): counted into the next.
    h = Harness(ScriptedEngine(tokens=["a", "", "b", "c"]))
    live = await h.start()
    events = await everything(live)
    assert [(e.seq, e.type, e.data.get("text"), e.data.get("n")) for e in events] == [
        (0, "start", None, None), (1, "token", "a", 1), (2, "token", "b", 2),
        (3, "token", "c", 1), (4, "done", None, None)]
    message = await h.stored_message(live)
    assert (message.status, message.content, message.finish_reason) == ("done", "abc", "stop")
    assert message.usage is not None and message.usage["completion_tokens"] == 4
    assert events[-1].data["usage"] == message.usage
    assert h.stored == [live.session_id]  # its next prefix may be warmed


async def test_a_reply_is_stored_before_its_terminal_event() -> None:
    h = Harness(ScriptedEngine(tokens=["a", "b"]))
    live = await h.start()
    await ended(live)
    assert h.store.order == ["token", "token", "stored done", "done"]
    assert h.lifecycle.idle and h.admission.active == 0


async def test_a_reply_ending_while_the_store_is_away_ends_and_is_stored_once_it_is_back(
        ) -> None:
    h = Harness(ScriptedEngine(tokens=["a", "b"]))
    h.replies.unstored.retry_s = 0.01  # its tries, one every 10 ms
    h.store.away = True
    live = await h.start()
    await ended(live)  # its terminal event, without waiting for the store
    assert h.store.order == ["token", "token", "done"]
    assert h.lifecycle.idle and h.admission.active == 0  # its place given back
    # Still this replica's: its session shows it ended, its log still follows to its end.
    assert h.replies.of_session(live.session_id) is live
    assert h.replies.logs.get(live.message.id) is live.log
    assert [e.type for e in await everything(live)][-1] == "done"
    assert h.stored == []  # not stored: its next prefix is not warmed
    h.store.away = False
    await until(lambda: h.replies.of_session(live.session_id) is None)
    message = await h.stored_message(live)
    assert (message.status, message.content) == ("done", "ab")
    assert h.store.order[-1] == "stored done"
    assert h.replies.logs.get(live.message.id) is None and not h.replies.unstored


async def test_a_reply_still_unstored_at_shutdown_is_tried_once_more() -> None:
    h = Harness(ScriptedEngine(tokens=["a", "b"]))
    h.replies.unstored.retry_s = 60.0  # only shutdown's try
    h.store.away = True
    live = await h.start()
    await ended(live)
    h.store.away = False
    await h.replies.shutdown()
    assert (await h.stored_message(live)).status == "done"
    assert h.replies.of_session(live.session_id) is None and not h.replies.unstored


async def test_cancel_stores_the_partial_text_as_cancelled() -> None:
    engine = ScriptedEngine(tokens=["w"] * 1000, delay_s=0.001)  # paced: mid-reply for 1 s
    h = Harness(engine)
    live = await h.start()
    await until(lambda: len(tokens(live)) >= 3)
    before = aborted("cancel")
    await h.replies.cancel(live)  # returns once stored
    message = await h.stored_message(live)
    said = "".join(e.data["text"] for e in tokens(live))
    assert (message.status, message.finish_reason) == ("cancelled", "cancelled")
    assert message.content == said and 3 <= len(said) < 1000
    assert (live.log.events[-1].type, live.log.events[-1].data["finish_reason"]) == (
        "done", "cancelled")
    assert h.store.order[-2:] == ["stored cancelled", "done"]
    assert engine.aborted == [live.message.id] and aborted("cancel") == before + 1
    assert live.generation.cause == "cancel"
    assert h.stored == []  # nothing to warm after a cancelled reply
    assert h.replies.of_session(live.session_id) is None and h.lifecycle.idle


async def test_a_reply_its_listeners_left_is_cancelled_after_the_grace() -> None:
    engine = ScriptedEngine()
    engine.proceed = asyncio.Event()  # never set: it would run on for ever
    h = Harness(engine)
    live = await h.start()
    before = aborted("client_left")
    listener = live.log.follow()
    assert (await anext(listener)).type == "start"  # type: ignore[union-attr]
    await listener.aclose()  # type: ignore[attr-defined]  # the last listener left: the grace starts
    assert not live.ended.is_set()  # not at once: a client that reconnects resumes it
    await ended(live)  # the grace elapsed with nobody back
    assert live.generation.cause == "client_left" and engine.aborted == [live.message.id]
    assert (await h.stored_message(live)).status == "cancelled"
    await h.replies.cancel(live)  # ended already: nothing more to stop, nor to count
    assert aborted("client_left") == before + 1


@pytest.mark.parametrize("how", ["drain timed out", "shutdown"])
async def test_a_drain_stores_it_cancelled_with_the_shutting_down_error(how: str) -> None:
    engine = ScriptedEngine(tokens=["w"] * 1000, delay_s=0.001)
    h = Harness(engine)
    live = await h.start()
    await until(lambda: len(tokens(live)) >= 2)
    before = aborted("drain")
    if how == "shutdown":
        await h.replies.shutdown()
    else:
        h.lifecycle.abort_all()
        await ended(live)
    message = await h.stored_message(live)
    assert (message.status, message.error) == ("cancelled", SHUT_DOWN)
    assert message.content == "".join(e.data["text"] for e in tokens(live))
    last = live.log.events[-1]
    assert (last.type, last.data["code"]) == ("error", "shutting_down")
    assert h.store.order[-2:] == ["stored cancelled", "error"]
    assert aborted("drain") == before + 1 and live.generation.cause == "drain"
