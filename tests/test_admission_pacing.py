"""The pacing of prompts into the engine (app/admission/pacing.py): a count of prompts without
a first token, and a budget of their prompt tokens together, derived from the engine's measured
prefill rate unless set."""

from __future__ import annotations

import time

import pytest

from app.admission import Admission, Ticket
from app.admission import gate as gate_module
from app.admission.pacing import PACING_ROUNDS, STEP_MARGIN_S, STEP_PREFILL_S, Pacing, token_limit


def admitted(ticket: Ticket) -> bool:
    return ticket.admitted is not None and ticket.admitted.done() and not ticket.released


def gate(prompts: int = 4, tokens: int | None = 300) -> Admission:
    admission = Admission(max_active=16, max_queue=16, max_prefilling=prompts)
    admission.pacing.max_tokens = tokens
    return admission


def test_a_queue_longer_than_the_count_lets_in_has_no_token_limit() -> None:
    pacing = Pacing(max_prompts=2, max_tokens=300)
    assert (pacing.prompts(2), pacing.tokens(2, decoding=32)) == (2, 300)  # the steady state
    assert pacing.tokens(3, decoding=32) is None  # the engine is behind: big steps
    deep = 4 * PACING_ROUNDS  # a quarter of a deep queue a round
    assert (pacing.prompts(deep), pacing.tokens(deep, decoding=32)) == (4, None)


def test_a_step_takes_one_prompt_under_the_token_limit_else_the_counts_share() -> None:
    pacing = Pacing(max_prompts=4, max_tokens=300)
    assert pacing.per_step(waiting=2, decoding=32) == 1  # the steady state: the token limit
    assert pacing.per_step(waiting=40, decoding=24) == 40 // PACING_ROUNDS  # behind a burst
    assert Pacing(max_prompts=4).per_step(waiting=2, decoding=32) == 4  # no token limit


def test_the_token_limit_holds_only_while_it_protects_more_streams_than_it_holds_back() -> None:
    pacing = Pacing(max_prompts=4, max_tokens=300)
    assert pacing.tokens(waiting=1, decoding=15) == 300  # steady state: streams to protect
    assert pacing.tokens(waiting=4, decoding=4) == 300
    assert pacing.tokens(waiting=12, decoding=0) is None  # a cold burst: nobody decodes yet


@pytest.mark.parametrize(("setting", "rate", "limit"), [
    (None, 330.0, round(330 * STEP_PREFILL_S)),  # unset: about a second of the measured rate
    (None, None, None),  # unset and not measured (a scripted engine): no limit
    (0, 330.0, None),  # 0: no limit
    (512, 330.0, 512),  # set: as set
])
def test_the_token_limit_is_the_setting_else_the_measured_rate(
        setting: int | None, rate: float | None, limit: int | None) -> None:
    assert token_limit(setting, rate) == limit


async def test_a_users_prompts_wait_while_their_tokens_would_pass_the_limit() -> None:
    admission = gate(prompts=4, tokens=300)
    decoding = [admission.enqueue("other") for _ in range(3)]
    for ticket in decoding:
        admission.first_token(ticket)  # three streams decode: the limit protects them
    first, second, third = (admission.enqueue("u", prompt_tokens=n) for n in (200, 200, 100))
    # The first goes alone whatever its size; the second would make 400 > 300; the third
    # waits behind it (a user's own requests keep their order).
    assert admitted(first) and not admitted(second) and not admitted(third)
    admission.first_token(first)
    assert admitted(second) and admitted(third)  # 200 + 100 fit together
    assert admission.prefilling == 2


async def test_a_prompt_bigger_than_the_limit_goes_alone_rather_than_never() -> None:
    admission = gate(prompts=4, tokens=300)
    big = admission.enqueue("u", prompt_tokens=5000)
    assert admitted(big)


async def test_a_user_with_nothing_in_the_engine_is_not_held_by_the_token_limit() -> None:
    admission = gate(prompts=4, tokens=300)
    decoding = admission.enqueue("heavy", prompt_tokens=250)
    admission.first_token(decoding)
    heavy = [admission.enqueue("heavy", prompt_tokens=250) for _ in range(2)]
    assert [admitted(t) for t in heavy] == [True, False]
    light = admission.enqueue("light", prompt_tokens=250)
    assert admitted(light)  # 500 > 300, but its first token does not wait for heavy's prompts


async def test_without_a_token_limit_only_the_count_paces() -> None:
    admission = gate(prompts=2, tokens=None)
    tickets = [admission.enqueue("u", prompt_tokens=5000) for _ in range(3)]
    assert [admitted(t) for t in tickets] == [True, True, False]


async def test_the_next_prompt_goes_in_while_the_one_before_is_prefilled(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The token limit is the next step's: a prompt the engine took into the step under way
    (a step's tokens came since it went in) no longer counts, so the next one is in the engine
    when that step ends, not a decode step later."""
    now = [time.monotonic()]  # the gate's clock, moved by the test: the margin is about time
    monkeypatch.setattr(gate_module.time, "monotonic", lambda: now[0])
    admission = gate(prompts=4, tokens=300)
    decoding = [admission.enqueue("other") for _ in range(3)]
    for ticket in decoding:
        admission.first_token(ticket)
    first, second = (admission.enqueue("u", prompt_tokens=200) for _ in range(2))
    assert admitted(first) and not admitted(second)
    now[0] += 2 * STEP_MARGIN_S  # the time between two engine steps
    admission.tokens(decoding[0], 1)  # a step ended: the next one prefills `first`
    assert admitted(second) and admission.prefilling == 2
    third = admission.enqueue("u", prompt_tokens=200)
    # Tokens that come within the margin of an admission may be of the step it missed.
    now[0] += STEP_MARGIN_S / 2
    admission.tokens(decoding[1], 1)
    assert not admitted(third)  # `second` is still the next step's: 400 > 300
    admission.first_token(first)
    assert not admitted(third)
    now[0] += 2 * STEP_MARGIN_S
    admission.tokens(decoding[2], 1)
    assert admitted(third)
