"""One generation's life (app/generation.py): admission, the deadline, the meter, the key's
count, the lifecycle count, and the abort cause decided once, on every path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from app.admission import BACKGROUND_PRIORITY, Admission
from app.engine.base import GenerationParams
from app.errors import Draining, EngineFailure
from app.generation import Caller, Gate, Generation, stop
from app.lifecycle import Lifecycle
from app.limits import KeyLimits, MemoryBuckets
from app.settings import Settings
from tests.conftest import Start
from tests.fakes import ScriptedEngine
from tests.sdk_clients import asgi_client


def aborted(cause: str) -> float:
    return REGISTRY.get_sample_value("streamchat_aborted_streams_total", {"cause": cause}) or 0


def gate_for(engine: ScriptedEngine, *, active: int = 4, max_seconds: float | None = None,
             limits: KeyLimits | None = None) -> Gate:
    return Gate(engine, Lifecycle(engine), Admission(max_active=active, max_queue=4,
                                                     max_prefilling=active),
                limits, max_seconds)


async def opened(gate: Gate, owner: str | None = None, n: int = 1) -> Generation:
    return await gate.open([1, 2], GenerationParams(max_tokens=16, n=n),
                           Caller("req-1", 0.0, owner, owner or "u"), transport="test")


async def drain(deltas: AsyncIterator[object]) -> list[object]:
    return [delta async for delta in deltas]


async def test_a_generation_runs_through_the_gate_and_ends_once() -> None:
    engine = ScriptedEngine(tokens=["a", "b", "c"], delay_s=0.01)
    gate = gate_for(engine, active=1)
    first, second = await opened(gate), await opened(gate)
    assert gate.lifecycle.generations == 2  # counted from acceptance: a drain waits for both
    seen = []
    async for _ in first.deltas():
        seen.append((gate.admission.prefilling, gate.admission.active))
    assert seen[0] == (0, 1)  # its first token freed its prompt's place
    assert second.ticket.admitted_at is not None  # its end freed its place in the engine
    assert first.usage()["completion_tokens"] == 3 and first.outcome == "done"
    assert gate.lifecycle.generations == 1
    await first.end()  # once only
    assert gate.lifecycle.generations == 1
    await second.release()  # never read: ended all the same
    assert gate.lifecycle.generations == 0 and gate.admission.active == 0


async def test_left_while_queued_it_never_reaches_the_engine() -> None:
    engine = ScriptedEngine()
    gate = gate_for(engine, active=1)
    running, queued = await opened(gate), await opened(gate)
    deltas = queued.deltas(heartbeat_s=0.01)
    assert await anext(deltas) is None  # a heartbeat: it waits in the queue
    before = aborted("client_left")
    await deltas.aclose()  # its client left
    assert engine.prompts == [] and gate.admission.waiting == 0
    assert queued.cause == "client_left" and aborted("client_left") == before + 1
    await running.release()
    assert gate.admission.idle and gate.lifecycle.generations == 0


@pytest.mark.parametrize(("cause", "outcome"), [
    (None, "disconnected"), ("cancel", "cancelled"), ("client_left", "disconnected")])
async def test_the_cause_is_the_one_named_when_stopped(cause: str | None, outcome: str) -> None:
    engine = ScriptedEngine(tokens=["w"] * 100, delay_s=0.01)
    generation = await opened(gate_for(engine))
    task = asyncio.create_task(drain(generation.deltas()))
    await engine.started.wait()
    before = aborted(cause or "client_left")
    if cause is None:
        task.cancel()  # the HTTP server's way: the client went away
    else:
        stop(task, cause)  # type: ignore[arg-type]
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (generation.cause, generation.outcome) == (cause or "client_left", outcome)
    assert aborted(cause or "client_left") == before + 1
    assert engine.aborted == ["req-1"]


async def test_a_drain_ends_it_with_draining() -> None:
    engine = ScriptedEngine(tokens=["w"] * 100, delay_s=0.01)
    gate = gate_for(engine)
    generation = await opened(gate)
    task = asyncio.create_task(drain(generation.deltas()))
    await engine.started.wait()
    before = aborted("drain")
    gate.lifecycle.abort_all()  # the drain timed out
    with pytest.raises(Draining):
        await task
    assert generation.cause == "drain" and aborted("drain") == before + 1


async def test_the_deadline_ends_open_choices_as_if_at_max_tokens() -> None:
    engine = ScriptedEngine(tokens=["w"] * 100, delay_s=0.02)
    generation = await opened(gate_for(engine, max_seconds=0.1), n=2)
    before = aborted("timeout")
    deltas = await drain(generation.deltas())
    ends = [d for d in deltas if d.finish_reason is not None]  # type: ignore[attr-defined]
    assert sorted((d.index, d.finish_reason) for d in ends) == [(0, "length"), (1, "length")]  # type: ignore[attr-defined]
    assert generation.cause == "timeout" and generation.outcome == "done"
    assert aborted("timeout") == before + 1


async def test_an_engine_failure_is_counted_as_one() -> None:
    class Failing(ScriptedEngine):
        async def stream(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def, override]
            raise EngineFailure("the engine died")
            yield  # an async generator, failing at once

    generation = await opened(gate_for(Failing()))
    before = aborted("engine_error")
    with pytest.raises(EngineFailure):
        await drain(generation.deltas())
    assert (generation.cause, generation.outcome) == ("engine_error", "error")
    assert aborted("engine_error") == before + 1


async def test_the_key_is_counted_from_open_and_charged_at_the_end() -> None:
    limits = KeyLimits(MemoryBuckets(), rpm=0, tpm=1000, max_streams=1)
    gate = gate_for(ScriptedEngine(tokens=["a", "b"]), limits=limits)
    generation = await opened(gate, owner="alice")
    assert limits.streams("alice") == 1
    await drain(generation.deltas())
    assert limits.streams("alice") == 0


async def test_background_work_goes_last_only_while_idle_and_is_no_stream() -> None:
    engine = ScriptedEngine(tokens=["a"] * 50, delay_s=0.01)
    gate = gate_for(engine)
    warm_up = gate.background([1, 2, 3], GenerationParams(max_tokens=1), "warm-1")
    assert warm_up is not None and warm_up.meter is None
    await drain(warm_up.deltas())
    assert engine.priorities == [BACKGROUND_PRIORITY] and gate.admission.active == 0
    busy = await opened(gate)
    assert gate.background([1], GenerationParams(max_tokens=1), "warm-2") is None
    await busy.release()
    stopped = gate.background([1, 2, 3], GenerationParams(max_tokens=50), "warm-3")
    assert stopped is not None
    before = {cause: aborted(cause) for cause in ("client_left", "cancel")}
    task = asyncio.create_task(drain(stopped.deltas()))
    await asyncio.wait_for(engine.started.wait(), 5)
    stop(task, "cancel")
    with pytest.raises(asyncio.CancelledError):
        await task
    assert {cause: aborted(cause) for cause in before} == before  # not a stream aborted


async def test_cancelling_a_background_response_counts_a_cancel_not_a_client_that_left(
        running: Start) -> None:
    """The bug: `POST /v1/responses/{id}/cancel` was counted as client_left."""
    engine = ScriptedEngine(tokens=["w"] * 500, delay_s=0.01)
    app = await running(Settings(orphan_grace_s=5), engine)
    async with asgi_client(app) as client:
        created = (await client.post("/v1/responses", json={
            "model": "scripted", "input": "hi", "background": True})).json()
        await asyncio.wait_for(engine.started.wait(), 5)
        before = aborted("cancel"), aborted("client_left")
        cancelled = await client.post(f"/v1/responses/{created['id']}/cancel")
        assert cancelled.json()["status"] == "cancelled"
        assert (aborted("cancel"), aborted("client_left")) == (before[0] + 1, before[1])


async def test_a_completions_first_token_and_the_gaps_after_it_are_timed() -> None:
    """A delta with text is a token shown: TTFT once, then the gaps (a session reply says
    itself when one is, once its reasoning is split off: tests/test_live.py)."""
    engine = ScriptedEngine(tokens=["a", "b", "c"])
    generation = await gate_for(engine).open([1, 2], GenerationParams(max_tokens=8),
                                             Caller("cmpl-1", 0.0), transport="openai")

    def count(name: str) -> float:
        return REGISTRY.get_sample_value(f"{name}_count", {"transport": "openai"}) or 0

    ttft = count("streamchat_time_to_first_token_seconds")
    itl = count("streamchat_inter_token_latency_seconds")
    await drain(generation.deltas())
    assert generation.meter is not None and generation.meter.first_token_at is not None
    assert count("streamchat_time_to_first_token_seconds") == ttft + 1
    assert count("streamchat_inter_token_latency_seconds") == itl + 2
