"""A moment's wait for a user whose generation just ended: heavier users' prompts hold back.

A user whose last generation in the engine ends often sends the next one at once: an agent's
next step after a tool call, a client's next turn. That prompt reaches the engine just after a
step began, so it waits for the whole step; if a heavier user's prompt went in first, the step
it waits for prefills that prompt, or its own step carries it. So for a moment after a
user's last generation ends, a user with generations in the engine starts no new prompt: the
one coming back gets the next step without a heavy prompt (anticipatory scheduling, as a disk
scheduler waits a moment for the process whose read just completed). A held prompt loses at
most that moment, once per lighter user's end; the gate pumps again when it passes. An end known
ahead counts too: a lighter user's last generation within `ENDING_TOKENS` of its `max_tokens`.
Without that, a heavy prompt let in the step before went first: in the fairness phase (replies
of 64 tokens) the light user's last token always came in the step after a heavy prompt's first
token, whose successor was then in the engine already (traced at admission).

The moment is `STREAMCHAT_ANTICIPATION_MS`, 100 by default: in the load benchmark's fairness
phase (2-core AVX2 EPYC, fp32) the light user's next request reached the server 7-21 ms after
its stream ended, and an engine step beside 32 streams there takes 0.2-0.9 s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from app.admission.ticket import Ticket, UserCounts

# A generation this close to its max_tokens ends within a step or two: two, because the gate may
# count a step's tokens for one stream before it counts another's.
ENDING_TOKENS = 2
# The longest the gate holds prompts back without admitting one: with many single-stream users
# ending in turn the holds would follow one another, and a heavier user would wait for ever.
# Two engine steps beside 32 streams on the 2-core AVX2 EPYC (0.2-0.9 s each), and the window.
MAX_HOLD_S = 2.0


class Anticipation:
    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._ended: dict[str, float] = {}  # user -> when its last generation ended
        self._holding_since: float | None = None  # holding without an admission since

    def ended(self, user: str, wake: Callable[[], None]) -> None:
        """`user`'s last generation in the engine ended: hold heavier users' prompts for the
        window, then call `wake` (the gate pumps its queue again)."""
        if self.window_s > 0:
            self._ended[user] = time.monotonic()
            asyncio.get_running_loop().call_later(self.window_s, wake)

    def returned(self, user: str) -> None:
        """`user` asked again: the fair order and the prefill rules look after it now."""
        self._ended.pop(user, None)

    def admitted(self) -> None:
        """A generation went into the engine: the hold's clock starts again."""
        self._holding_since = None

    def holds(self, in_engine: int, users: UserCounts, engine: Iterable[Ticket]) -> bool:
        """Whether a user with `in_engine` generations in the engine (`engine`; per user:
        `users`) waits for a lighter one that just ended, or whose last generation is ending;
        never once the gate has held prompts for `MAX_HOLD_S` without admitting one. Every hold
        ends with an event that pumps the gate: the window's end, or the ending generation's."""
        if in_engine == 0 or self.window_s <= 0:
            return False
        now = time.monotonic()
        for user, at in list(self._ended.items()):
            if now - at >= self.window_s:
                del self._ended[user]
        holding = bool(self._ended) or any(
            t.max_tokens - t.generated <= ENDING_TOKENS and not t.prefilling
            and users.get(t.user) == 1 < in_engine for t in engine if not t.background)
        if not holding:
            return False
        if self._holding_since is None:
            self._holding_since = now
        return now - self._holding_since < MAX_HOLD_S
