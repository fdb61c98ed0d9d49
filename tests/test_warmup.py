"""Warming a conversation's next prefix (app/replies/warmup.py): when it runs, what it sends,
and that it gives way to every generation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.admission import BACKGROUND_PRIORITY, Admission
from app.chat import ChatService
from app.lifecycle import Lifecycle
from app.replies.warmup import PrefixWarmer
from app.sessions.memory import MemorySessionStore
from app.streams.memory import MemoryReplyLogs
from tests.fakes import ScriptedEngine
from tests.waiting import until


class Service:
    def __init__(self, engine: ScriptedEngine) -> None:
        self.engine = engine
        self.admission = Admission(max_active=4, max_queue=4, max_prefilling=2)
        self.store = MemorySessionStore()
        lifecycle = Lifecycle(engine)
        self.chat = ChatService(engine, self.store, MemoryReplyLogs(), lifecycle,
                                self.admission, default_max_tokens=8, orphan_grace_s=0.1)
        self.warmer = PrefixWarmer(self.chat.gate, self.store, self.chat.replies,
                                   default_max_tokens=8)

    async def turn(self, sid: str, content: str) -> None:
        live = await self.chat.post_message(sid, content, transport="test")
        await live.ended.wait()

    def warmups(self) -> list[int]:
        """Indexes of the engine's requests that were warm-ups."""
        return [i for i, p in enumerate(self.engine.priorities) if p == BACKGROUND_PRIORITY]


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    svc = Service(ScriptedEngine(tokens=["a", "b", "c"], max_model_len=4096))
    await svc.chat.start()
    yield svc
    await svc.warmer.close()
    await svc.chat.shutdown()


def warming(service: Service) -> bool:
    """A warm-up is running (or about to: its task exists and has not ended)."""
    return any(task.get_name().startswith("warmup-") and not task.done()
               for task in asyncio.all_tasks())


async def settle(service: Service) -> None:
    """Until the warmer has nothing in flight: what it was going to warm, it has."""
    await until(lambda: not warming(service))


async def test_the_next_prompt_starts_with_the_warmed_prefix(service: Service) -> None:
    sid = (await service.chat.create_session(system="S")).id
    await service.turn(sid, "one")
    await settle(service)
    assert service.warmups() == [1]
    warm = service.engine.prompts[1]
    assert service.engine.params[1].max_tokens == 1  # prefill only
    await service.turn(sid, "two")
    nxt = service.engine.prompts[2]
    assert nxt[: len(warm)] == warm and len(nxt) > len(warm)
    # The warm-up covered the whole reply: what the next turn prefills is its own message.
    history = await service.engine.render_chat([])
    assert len(nxt) - len(warm) < len("two") + 8 + len(history)


async def test_a_generation_stops_the_warm_up_in_flight(service: Service) -> None:
    service.engine.prefill_s = 0.2  # the warm-up is still prefilling when the next one comes
    sid = (await service.chat.create_session()).id
    other = (await service.chat.create_session()).id
    await service.turn(sid, "one")
    await until(lambda: service.engine.running)  # the warm-up is in the engine, prefilling
    assert service.warmups() == [1] and len(service.engine.running) == 1
    live = await service.chat.post_message(other, "hi", transport="test")
    await until(lambda: service.engine.aborted)
    assert service.engine.aborted[0].startswith("warm-")
    await live.ended.wait()
    # Tried again at the next idle moment (what the first attempt computed stays cached).
    await until(lambda: len(service.warmups()) >= 2)


async def test_no_warm_up_while_a_prompt_is_being_prefilled(service: Service) -> None:
    service.engine.prefill_s = 0.2
    service.engine.delay_s = 0.01
    first = (await service.chat.create_session()).id
    second = (await service.chat.create_session()).id
    await service.turn(first, "one")
    service.warmer.stop()
    busy = await service.chat.post_message(second, "two", transport="test")
    await until(lambda: busy.message.id in service.engine.running)  # prefilling for 0.2 s
    assert not service.admission.idle
    started = len(service.engine.prompts)
    service.warmer.schedule(first)
    # Its first token ends the prefill: no warm-up began all the while.
    await until(lambda: busy.message.status == "streaming")
    assert len(service.engine.prompts) == started
    await busy.ended.wait()


async def test_no_warm_up_when_the_next_turn_must_drop_old_turns() -> None:
    svc = Service(ScriptedEngine(tokens=["a"], max_model_len=64))
    await svc.chat.start()
    try:
        sid = (await svc.chat.create_session()).id
        await svc.turn(sid, "x" * 50)  # 50 + reply + markers + 8 reserved: no room to warm
        await settle(svc)
        assert svc.warmups() == []
    finally:
        await svc.warmer.close()
        await svc.chat.shutdown()
