"""The first-token predictor (app/admission/ttft.py) and the objective admission keeps with it
(app/admission/objective.py): what is ahead of a request, the prediction from known rates,
what it learns, and the gate that admits what fits and refuses what does not, with a
Retry-After from the prediction."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from app.admission import Admission, Ticket
from app.admission.calibrate import keep_objective
from app.admission.objective import Objective, default_slo_s
from app.admission.ttft import Ahead, TtftPredictor, ahead_of, first_end_s
from app.completions import Caller, CompletionService
from app.engine.base import ChatTurn, Delta, GenerationParams
from app.errors import QueueFull
from app.generation import Gate
from app.lifecycle import Lifecycle
from tests.fakes import ScriptedEngine
from tests.waiting import until

RATE = 1000.0  # prompt tokens per second, the scripted engine's "known" rate
STEP = 0.01  # seconds a decode step


def predictor() -> TtftPredictor:
    return TtftPredictor(prefill_tps=RATE, step_s=STEP, tokens_per_char=0.25)


def ticket(seq: int, prompt: int, *, prefilling: bool = False, max_tokens: int = 512,
           generated: int = 0) -> Ticket:
    return Ticket("u", seq, 0.0, prompt_tokens=prompt, prefilling=prefilling,
                  max_tokens=max_tokens, generated=generated)


# -- the prediction ----------------------------------------------------------------------------

def test_the_prediction_is_the_prompts_ahead_and_its_own_at_the_rate_plus_a_step() -> None:
    p = predictor()
    assert p.predict(Ahead(0, 0), 500) == pytest.approx(0.5 + STEP)
    assert p.predict(Ahead(1500, 0), 500) == pytest.approx(2.0 + STEP)
    # Waiting for a place: 30 decode steps, then its prefill.
    assert p.predict(Ahead(0, 30), 500) == pytest.approx(30 * STEP + 0.5 + STEP)
    # Each prompt ahead is prefilled in a step that carries the decoding streams too.
    assert p.predict(Ahead(1500, 0, 3), 500) == pytest.approx(2.0 + 4 * STEP)
    # An engine running a step: its own begins once that one ends, half a step on average.
    assert p.predict(Ahead(0, 0, busy=True), 500) == pytest.approx(0.5 + 1.5 * STEP)


def test_ahead_counts_prompts_in_prefill_and_those_queued_before_it() -> None:
    engine = [ticket(0, 300, prefilling=True), ticket(1, 999, max_tokens=10, generated=4)]
    queued = [ticket(2, 100), ticket(3, 50), ticket(4, 70)]
    # Decoding prompts are done with; the queued one behind it is not ahead.
    assert ahead_of(1, queued, engine, max_active=8) == Ahead(300 + 100, 0, 2, busy=True)
    # Every place taken: the generation with the fewest steps left ends first (10 - 4).
    assert ahead_of(0, queued, engine, max_active=2) == Ahead(300, 6, 1, busy=True)
    assert not ahead_of(0, queued, [], max_active=2).busy  # an idle engine
    # The second place to free is the other one's (512 steps at most).
    assert ahead_of(1, queued, engine, max_active=2).place_steps == 512


def test_prompts_ahead_take_as_many_steps_as_the_pacing_needs_for_them() -> None:
    engine = [ticket(i, 100, prefilling=True) for i in range(4)]
    queued = [ticket(4 + i, 100) for i in range(8)]
    # One a step while the token limit holds; a deep queue's share a step behind a burst.
    assert ahead_of(8, queued, engine, max_active=64).prefill_steps == 12
    assert ahead_of(8, queued, engine, max_active=64, per_step=4).prefill_steps == 3
    assert ahead_of(7, queued, engine, max_active=64, per_step=4).prefill_steps == 3  # 11 / 4


def test_a_refused_client_of_a_full_queue_waits_for_the_first_generation_to_end() -> None:
    engine = [ticket(0, 10, max_tokens=100, generated=40), ticket(1, 10, max_tokens=300)]
    assert first_end_s(engine, predictor()) == pytest.approx(60 * STEP)
    assert first_end_s([], predictor()) == 0


def test_it_learns_the_rate_the_step_and_the_tokens_per_character() -> None:
    p = TtftPredictor(prefill_tps=500.0, step_s=STEP, tokens_per_char=0.3)
    for _ in range(60):  # decode steps of 40 ms; prompts of 5 characters a token
        p.stepped(0.04)
        p.tokenized(1000, 200)
    for _ in range(60):  # 2,000 tokens alone on an idle engine in an idle step and a second
        p.prefilled_alone(2000, 1.0 + STEP)
    assert p.prefill_tps == pytest.approx(2000, rel=0.01)
    assert p.step_s == pytest.approx(0.04, rel=0.01)
    # The step learned under load is not an idle step's cost: subtracted from a lone prefill,
    # a 0.5 s step had made the rate 4,000 tokens/s.
    p.stepped(0.5)
    p.prefilled_alone(2000, 1.0 + STEP)
    assert p.prefill_tps == pytest.approx(2000, rel=0.01)
    assert p.estimate_tokens(1000) == pytest.approx(200, abs=2)
    rate, ratio = p.prefill_tps, p.tokens_per_char
    p.prefilled_alone(10, 5.0)  # too short a prompt to say anything of the rate
    p.tokenized(6, 40)  # "Say 5." in a template: its markers are no tokens per character
    assert (p.prefill_tps, p.tokens_per_char) == (rate, ratio)


def test_the_default_objective_admits_a_lone_prompt_of_the_whole_context() -> None:
    p = predictor()
    slo = default_slo_s(p, 8192)
    assert slo >= p.alone_s(8192)
    assert default_slo_s(TtftPredictor(prefill_tps=1e6, step_s=1e-3), 256) == 1.0  # the floor


# -- the gate keeping it, on a scripted engine with known rates ----------------------------------

def service(slo_s: float | None, *,
            active: int = 8) -> tuple[asyncio.Event, CompletionService]:
    """A completion service on a scripted engine, and the event that lets its prompts' first
    tokens come (every prompt is held in prefill until the test says)."""
    engine = ScriptedEngine(max_model_len=10_000)
    engine.proceed = proceed = asyncio.Event()
    objective = Objective(predictor(), slo_s)
    admission = Admission(max_active=active, max_queue=8, max_prefilling=active,
                          objective=objective)
    return proceed, CompletionService(engine, Lifecycle(engine), admission, default_max_tokens=4)


async def ask(svc: CompletionService, tokens: int) -> object:
    """A completion of `tokens` prompt tokens (given as ids: their count is known), left
    waiting in the gate or held in the engine's prefill."""
    return await svc.text([7] * tokens, GenerationParams(), None, Caller("cmpl", 0.0))


async def test_it_admits_what_fits_and_refuses_what_does_not_with_a_right_retry_after() -> None:
    _, svc = service(slo_s=1.0)
    await ask(svc, 800)  # alone: 0.81 s
    await ask(svc, 100)  # behind 800 in prefill: 0.92 s (a step for each prompt), fits
    with pytest.raises(QueueFull) as refused:
        await ask(svc, 3000)  # behind 900: 3.93 s, 2.93 s too long
    assert refused.value.retry_after_s == 3 and refused.value.code == "queue_full"
    assert "3.9 s" in refused.value.message and "1.0 s" in refused.value.message
    await ask(svc, 50)  # a short one still fits beside them: 0.97 s
    with pytest.raises(QueueFull) as refused:
        await ask(svc, 95)  # 1.025 s
    assert refused.value.retry_after_s == 1
    assert svc.gate.admission.active == 3


async def test_a_request_with_nothing_ahead_is_never_refused() -> None:
    _, svc = service(slo_s=0.1)
    await ask(svc, 3000)  # 3 s alone, past the objective: refusing it would refuse it forever
    with pytest.raises(QueueFull):
        await ask(svc, 10)  # behind 3,000 tokens


async def test_prefilled_prompts_are_no_longer_ahead_and_the_prediction_is_checked() -> None:
    proceed, svc = service(slo_s=1.0)
    met = REGISTRY.get_sample_value("streamchat_ttft_objective_requests_total", {"outcome": "met"})
    ratios = REGISTRY.get_sample_value("streamchat_ttft_prediction_ratio_count")
    first = await ask(svc, 900)
    with pytest.raises(QueueFull):
        await ask(svc, 500)
    proceed.set()  # the engine prefills it: its first token comes
    deltas = first.deltas()  # type: ignore[attr-defined]
    assert (await anext(deltas)).text
    await ask(svc, 500)  # nothing in prefill now
    assert REGISTRY.get_sample_value(
        "streamchat_ttft_objective_requests_total", {"outcome": "met"}) == (met or 0) + 1
    assert REGISTRY.get_sample_value("streamchat_ttft_prediction_ratio_count") == (ratios or 0) + 1
    await deltas.aclose()


async def test_a_full_queues_retry_after_is_when_the_first_generation_ends() -> None:
    proceed, svc = service(slo_s=None, active=1)
    svc.gate.admission.max_queue = 0
    proceed.set()
    held = await svc.text([7], GenerationParams(), 400, Caller("a", 0.0))
    with pytest.raises(QueueFull) as refused:
        await ask(svc, 10)
    # 400 steps of 10 ms to its end: 4 s, predicted, not a constant.
    assert refused.value.retry_after_s == 4
    await held.release()


async def test_without_an_objective_nothing_is_refused_for_its_prediction() -> None:
    _, svc = service(slo_s=None)
    for _ in range(5):
        await ask(svc, 3000)
    assert svc.gate.admission.active == 5


# -- refused before any work ---------------------------------------------------------------------

class CountingEngine(ScriptedEngine):
    """Counts every call of the tokenizer and the chat template."""

    def __init__(self) -> None:
        super().__init__()
        self.tokenized = 0

    async def tokenize(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        self.tokenized += 1
        return await super().tokenize(text, add_special_tokens=add_special_tokens)


@pytest.mark.parametrize("slo_s", [None, 0.5])
async def test_a_refused_completion_never_reaches_the_tokenizer_or_the_template(
        slo_s: float | None) -> None:
    engine = CountingEngine()
    engine.max_model_len = 10_000
    engine.proceed = asyncio.Event()
    admission = Admission(max_active=1, max_queue=0 if slo_s is None else 8, max_prefilling=1,
                          objective=Objective(predictor(), slo_s))
    svc = CompletionService(engine, Lifecycle(engine), admission, default_max_tokens=4)
    turns = [ChatTurn("user", "x" * 4000)]  # ~1,000 tokens estimated: ~1 s at the known rate
    held = await svc.chat(turns, GenerationParams(), None, Caller("a", 0.0))
    renders, tokenized = len(engine.renders), engine.tokenized
    with pytest.raises(QueueFull):  # the queue is full, or the prediction misses
        await svc.chat(turns, GenerationParams(), None, Caller("b", 0.0))
    with pytest.raises(QueueFull):
        await svc.text("y" * 4000, GenerationParams(), None, Caller("c", 0.0))
    assert (len(engine.renders), engine.tokenized) == (renders, tokenized)
    engine.proceed.set()
    await held.release()
    await until(lambda: admission.active == 0)


@pytest.mark.parametrize("slo_s", [None, 0.5])
async def test_a_refused_session_turn_never_reaches_the_template(slo_s: float | None) -> None:
    from app.chat import ChatService
    from app.sessions.memory import MemorySessionStore
    from app.streams.memory import MemoryReplyLogs

    engine = CountingEngine()
    engine.max_model_len = 10_000
    engine.proceed = asyncio.Event()
    admission = Admission(max_active=1, max_queue=0 if slo_s is None else 8, max_prefilling=1,
                          objective=Objective(predictor(), slo_s))
    chat = ChatService(engine, MemorySessionStore(), MemoryReplyLogs(), Lifecycle(engine),
                       admission, default_max_tokens=4)
    await chat.start()
    try:
        busy, sid = (await chat.create_session()).id, (await chat.create_session()).id
        await chat.post_message(busy, "x" * 4000, transport="test")
        renders = len(engine.renders)
        with pytest.raises(QueueFull):
            await chat.post_message(sid, "x" * 4000, transport="test")
        assert len(engine.renders) == renders
        assert (await chat.get_session(sid)).messages == []  # nothing stored
        assert await chat.reply_in_flight(sid) is None  # its claim let go
    finally:
        engine.proceed.set()
        await chat.shutdown()


async def test_refusals_for_the_objective_are_counted() -> None:
    before = REGISTRY.get_sample_value(
        "streamchat_ttft_objective_requests_total", {"outcome": "refused"}) or 0
    _, svc = service(slo_s=0.5)
    await ask(svc, 400)
    with pytest.raises(QueueFull):
        await ask(svc, 400)
    after = REGISTRY.get_sample_value(
        "streamchat_ttft_objective_requests_total", {"outcome": "refused"})
    assert after == before + 1
    assert math.isclose(REGISTRY.get_sample_value("streamchat_ttft_objective_seconds") or 0, 0.5)


# -- the objective set at start -------------------------------------------------------------------

def gate_on(engine: ScriptedEngine, objective: Objective) -> Gate:
    admission = Admission(max_active=8, max_queue=0, max_prefilling=4, objective=objective)
    return Gate(engine, Lifecycle(engine), admission)


class Observed(ScriptedEngine):
    """Notes whether the replica said it was ready while each prompt ran."""

    lifecycle: Lifecycle | None = None
    reasons: list[str | None]

    def stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Delta]:
        assert self.lifecycle is not None
        self.reasons.append(self.lifecycle.not_ready_reason())
        return super().stream(*args, **kwargs)


async def test_the_engine_is_measured_at_start_and_the_default_objective_follows() -> None:
    engine = Observed(max_model_len=2048)
    engine.reasons = []
    objective = Objective(TtftPredictor())
    gate = gate_on(engine, objective)
    engine.lifecycle = gate.lifecycle
    await keep_objective(gate, objective, None, measure=True)
    # Not ready while it was measured (no request disturbs it), ready again after.
    assert engine.reasons == ["the engine is being measured"] * 3
    assert gate.lifecycle.not_ready_reason() is None
    # A short prompt to warm up, then a short and a long one, none a prefix of another.
    assert [len(p) for p in engine.prompts] == [32, 32, 1024]
    assert len({tuple(p[:4]) for p in engine.prompts}) == 3
    assert objective.slo_s == default_slo_s(objective.predictor, 2048) >= 1.0
    assert objective.context == 2048


@pytest.mark.parametrize(("slo_ms", "measure", "slo_s"), [
    (1500, True, 1.5), (1500, False, 1.5),  # set: kept as it is
    (0, True, None),  # 0: none
    (None, False, None),  # not measured (a scripted engine in tests): none unless set
])
async def test_the_objective_set_or_none(slo_ms: int | None, measure: bool,
                                         slo_s: float | None) -> None:
    objective = Objective(TtftPredictor(), 9.0)
    await keep_objective(gate_on(ScriptedEngine(), objective), objective, slo_ms, measure)
    assert objective.slo_s == slo_s
