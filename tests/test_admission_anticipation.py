"""Anticipation (app/admission/anticipation.py): for a moment after a user's last generation
ends, heavier users' prompts wait for it to come back, and no longer than that."""

from __future__ import annotations

from app.admission import Admission, Ticket, anticipation
from app.admission.anticipation import Anticipation
from app.admission.ticket import UserCounts

WINDOW_S = 0.1


def gate(window_s: float = WINDOW_S) -> Admission:
    return Admission(max_active=8, max_queue=8, max_prefilling=1, anticipation_s=window_s)


def admitted(ticket: Ticket) -> bool:
    return ticket.admitted is not None and ticket.admitted.done() and not ticket.released


def heavy_decoding(admission: Admission, streams: int = 2) -> list[Ticket]:
    """`streams` of the heavy user, each past its first token."""
    tickets = [admission.enqueue("heavy") for _ in range(streams)]
    for ticket in tickets:
        admission.first_token(ticket)
    assert all(admitted(t) for t in tickets)
    return tickets


async def test_a_heavier_prompt_waits_out_the_moment_after_a_lighter_user_ends() -> None:
    admission = gate()
    heavy_decoding(admission)
    light = admission.enqueue("light")
    admission.first_token(light)
    admission.release(light)  # the light user's last generation ended
    waiting = admission.enqueue("heavy")
    assert not admitted(waiting)
    # Held for the window only: the gate lets it in when the window passes, unasked.
    assert await admission.wait(waiting, timeout_s=10 * WINDOW_S)
    assert admitted(waiting)


async def test_the_user_who_comes_back_goes_alone_and_the_heavier_prompt_follows() -> None:
    admission = gate()
    heavy_decoding(admission)
    light = admission.enqueue("light")
    admission.first_token(light)
    admission.release(light)
    waiting = admission.enqueue("heavy")
    back = admission.enqueue("light")
    assert admitted(back) and not admitted(waiting)
    # The returning prompt is prefilled alone; the heavier one goes on its first token.
    admission.first_token(back)
    assert admitted(waiting)


async def test_a_user_with_nothing_in_the_engine_is_never_held() -> None:
    admission = gate()
    light = admission.enqueue("light")
    admission.release(light)
    other = admission.enqueue("other")
    assert admitted(other)


async def test_a_user_with_generations_left_in_the_engine_holds_no_one() -> None:
    admission = gate()
    heavy_decoding(admission)
    first, second = admission.enqueue("medium"), admission.enqueue("medium")
    admission.first_token(first)
    admission.first_token(second)
    admission.release(first)  # the medium user still has one in the engine
    assert admitted(admission.enqueue("heavy"))


async def test_a_window_of_zero_turns_it_off() -> None:
    admission = gate(window_s=0)
    heavy_decoding(admission)
    light = admission.enqueue("light")
    admission.first_token(light)
    admission.release(light)
    assert admitted(admission.enqueue("heavy"))


async def test_a_lighter_users_last_generation_about_to_end_holds_heavier_prompts() -> None:
    """An end known ahead: the light reply is two tokens from its max_tokens, so the heavier
    prompt would be in the engine when the light user comes back; it waits for that, then for
    the moment after."""
    admission = gate()
    heavy_decoding(admission)
    light = admission.enqueue("light")
    admission.objective.prompt_known(light, prompt_tokens=10, max_tokens=4)
    admission.first_token(light)
    first = admission.enqueue("heavy")
    assert admitted(first)  # three tokens left: not yet
    admission.first_token(first)
    admission.tokens(light, 1)
    waiting = admission.enqueue("heavy")
    assert not admitted(waiting)
    admission.tokens(light, 2)
    admission.release(light)
    assert not admitted(waiting)  # then the moment after its end
    assert await admission.wait(waiting, timeout_s=10 * WINDOW_S)


async def test_holds_end_after_the_longest_hold_without_an_admission(monkeypatch) -> None:
    """Single-stream users ending one after another would hold a heavier user for ever: after
    MAX_HOLD_S without an admission the gate holds no more, until one goes in."""
    now = [1000.0]
    monkeypatch.setattr(anticipation.time, "monotonic", lambda: now[0])
    holder = Anticipation(window_s=WINDOW_S)
    holds = lambda: holder.holds(2, UserCounts({"heavy": 2}), [])  # noqa: E731
    for step in range(int(anticipation.MAX_HOLD_S / WINDOW_S) + 1):
        holder.ended(f"light-{step}", lambda: None)  # another light user ends every window
        assert holds() == (now[0] - 1000.0 < anticipation.MAX_HOLD_S)
        now[0] += WINDOW_S
    holder.ended("light-last", lambda: None)
    assert not holds()
    holder.admitted()  # a prompt went in: the next hold may last as long again
    assert holds()
