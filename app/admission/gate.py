"""Admission control: which generation goes into the engine next, and who is told to come back.

Every generation passes this gate on its way to the engine (app/generation.py holds a ticket
from it for its whole life). Two limits hold at once, and heavier users' prompts wait a moment
for a user whose last generation ends (anticipation.py):

- `max_active`: generations in the engine; by default the engine's `max_num_seqs`, so the
  engine never queues work it cannot run;
- the pacing of prompts (pacing.py): at most `max_prefilling` without a first token, and about
  a second of prefill in the next engine step. A prompt waits here in a fair order, not behind
  every prompt in the engine: its first token comes sooner, and running streams' gaps stay short.

Behind the gate waits a bounded queue, fair between users (fair_queue.py): at most
`max_queue` generations beyond the engine's places. Past it, or when its predicted time to
first token misses the objective (`STREAMCHAT_TTFT_SLO_MS`, objective.py), a request is refused
at once (`QueueFull`: 429, Retry-After from the prediction), before any work; never a hang.

Background work (a conversation's prefix warm-up) gets a place only while nobody waits and no
prompt is prefilled (`background`), and is stopped the moment a generation arrives."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable

from app import metrics
from app.admission.anticipation import Anticipation
from app.admission.fair_queue import FairQueue
from app.admission.objective import Objective
from app.admission.pacing import Pacing
from app.admission.ticket import BACKGROUND_PRIORITY, OnPosition, Ticket, UserCounts
from app.admission.ttft import first_end_s
from app.errors import QueueFull


class Admission:
    def __init__(self, *, max_active: int, max_queue: int, max_prefilling: int,
                 objective: Objective | None = None, anticipation_s: float = 0.0) -> None:
        if max_active < 1 or max_queue < 0 or max_prefilling < 1:
            raise ValueError(f"need max_active >= 1, max_queue >= 0, max_prefilling >= 1; got "
                             f"{max_active}, {max_queue}, {max_prefilling}")
        self.max_active, self.max_queue = max_active, max_queue
        self.pacing = Pacing(max_prefilling)
        self.objective = objective if objective is not None else Objective()
        self._anticipation = Anticipation(anticipation_s)  # a user just done may come back
        self.active = self.prefilling = 0  # generations in the engine; of those, prompts
        self._last_step_end = 0.0  # when an engine step's tokens last came (pacing.py)
        self._engine: set[Ticket] = set()  # admitted, not yet released
        self._users = UserCounts()
        self._prefilling_users = UserCounts()  # per user: its prompts in the engine, no token yet
        self._queue = FairQueue()
        self._seq = itertools.count()
        self._on_busy: list[Callable[[], None]] = []  # a generation arrived
        self._on_idle: list[Callable[[], None]] = []  # nobody waits, no prompt prefills

    def resize(self, max_active: int) -> None:
        """Set `max_active` (once the engine says how many requests it runs at once)."""
        if max_active < 1:
            raise ValueError(f"need max_active >= 1, got {max_active}")
        self.max_active = max_active
        self._pump()

    # -- state --------------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        return self._queue.count

    @property
    def idle(self) -> bool:
        """Nobody waits and no prompt is being prefilled: background work may run."""
        return self._queue.count == 0 and self.prefilling == 0

    def on_busy(self, callback: Callable[[], None]) -> None:
        self._on_busy.append(callback)  # background work must stop

    def on_idle(self, callback: Callable[[], None]) -> None:
        self._on_idle.append(callback)  # background work may start

    def retry_after_s(self) -> float:
        """How long a client refused by a full queue should wait: until the first generation
        in the engine ends (a place frees), as predicted (ttft.py), at least a second."""
        return max(1.0, math.ceil(first_end_s(self._engine, self.objective.predictor)))

    def check_room(self) -> None:
        """QueueFull when every engine place is taken and `max_queue` wait (a prompt only paced
        while places are free uses none); asked by `enqueue` and by app/api/http/shed.py."""
        waiting = self._queue.count
        if self.active + waiting >= self.max_active + self.max_queue:
            retry = self.retry_after_s()
            raise QueueFull(f"the server is at capacity: {waiting} requests are waiting "
                            f"already; retry in {math.ceil(retry)} s", retry_after_s=retry)

    # -- a generation's life ----------------------------------------------------------------

    def enqueue(self, user: str, on_position: OnPosition | None = None, *, rank: int = 0,
                prompt_chars: int = 0, prompt_tokens: int | None = None) -> Ticket:
        """A place for one generation of `user`: admitted at once when there is room and
        nobody waits, else queued; QueueFull at once when the queue is full or its first token
        would miss the objective (its prompt: `prompt_tokens`, else `prompt_chars` long)."""
        ticket = Ticket(user, next(self._seq), time.monotonic(), on_position, rank=rank)
        ticket.admitted = asyncio.get_running_loop().create_future()
        self.objective.estimate(ticket, prompt_chars, prompt_tokens)
        self._anticipation.returned(user)
        for callback in self._on_busy:
            callback()
        self.check_room()
        self._queue.push(ticket)
        per_step = self.pacing.per_step(self._queue.count, self.active - self.prefilling)
        if refusal := self.objective.refusal(ticket, self.order(), self._engine,
                                             self.max_active, per_step):
            self._queue.remove(ticket)
            raise refusal
        self._pump()  # in fair order: this one, if it is next and there is room
        if ticket.admitted_at is None:
            metrics.QUEUE_LENGTH.set(self._queue.count)
            self._queue.tell_positions(self._users)
        return ticket

    def background(self) -> Ticket | None:
        """A place for background work (a prefix warm-up) while the gate is idle, else None:
        admitted at once, counted nowhere, last in the engine's queue; stopped on `on_busy`."""
        if not self.idle:
            return None
        ticket = Ticket("", next(self._seq), time.monotonic(), background=True,
                        priority=BACKGROUND_PRIORITY)
        ticket.admitted = asyncio.get_running_loop().create_future()
        ticket.admitted.set_result(None)
        ticket.admitted_at = ticket.enqueued_at
        return ticket

    def watch(self, ticket: Ticket, on_position: OnPosition) -> None:
        """Tell `on_position` where the ticket stands now, and whenever that changes."""
        ticket.on_position = on_position
        if ticket.admitted_at is None and not ticket.released:
            ticket.position = None
            self._queue.tell_positions(self._users)

    async def wait(self, ticket: Ticket, timeout_s: float | None = None) -> bool:
        """Until `ticket` may enter the engine (True), or `timeout_s` passed (False).
        Cancelled while waiting, it leaves the queue."""
        assert ticket.admitted is not None
        if ticket.admitted.done():
            return True
        try:
            # asyncio.wait never cancels the future it waits on, and starts no task.
            done, _ = await asyncio.wait({ticket.admitted}, timeout=timeout_s)
        except asyncio.CancelledError:
            self.release(ticket)
            raise
        return bool(done)

    def first_token(self, ticket: Ticket, uncached_tokens: int | None = None,
                    count: int = 1) -> None:
        """The engine produced the ticket's first token (`count` tokens, `uncached_tokens` of
        its prompt prefilled): its prompt is prefilled, and its prediction checked."""
        self.objective.first_token(ticket, uncached_tokens, count)
        if ticket.prefilling:
            self._prefilled(ticket)
            self._check_idle()  # the last prompt in prefill: background work may start
        self._step_ended()

    def tokens(self, ticket: Ticket, count: int) -> None:
        """The engine produced `count` more tokens for the ticket (after its first)."""
        self.objective.tokens(ticket, count)
        self._step_ended()

    def _step_ended(self) -> None:
        self._last_step_end = time.monotonic()  # its prompts are not the next step's (pacing.py)
        if self._queue.count:  # a token per stream per step: nothing to do unless one waits
            self._pump()

    def _prefilled(self, ticket: Ticket) -> None:
        ticket.prefilling, self.prefilling = False, self.prefilling - 1
        self._prefilling_users.add(ticket.user, -1)

    def release(self, ticket: Ticket) -> None:
        """The generation ended (or gave up waiting): its place goes to the next one."""
        if ticket.released:
            return
        ticket.released = True
        if ticket.background:
            return
        if ticket.admitted_at is None:  # still waiting: leave the queue
            if self._queue.remove(ticket):
                metrics.QUEUE_LENGTH.set(self._queue.count)
            if ticket.admitted is not None and not ticket.admitted.done():
                ticket.admitted.cancel()
            self._queue.tell_positions(self._users)
            self._check_idle()
            return
        self.active -= 1
        self._engine.discard(ticket)
        self._users.add(ticket.user, -1)
        metrics.ADMITTED.set(self.active)
        if ticket.prefilling:
            self._prefilled(ticket)
        if self._users.get(ticket.user) == 0:
            self._anticipation.ended(ticket.user, self._pump)
        self._pump()

    # -- the gate -------------------------------------------------------------------------------

    def _has_room(self, user: str) -> bool:
        if self.active >= self.max_active or self._anticipation.holds(
                self._users.get(user), self._users, self._engine):
            return False
        waiting = self._queue.count
        prompts = self.pacing.prompts(waiting)
        if self.prefilling >= self._queue.prefill_room(user, self._users,
                                                       self._prefilling_users, prompts):
            return False
        return self._users.get(user) == 0 or self.pacing.next_step_fits(
            self._queue.head(user).prompt_tokens, self._engine, self._last_step_end,
            waiting=waiting, decoding=self.active - self.prefilling)

    def _admit(self, ticket: Ticket) -> None:
        ticket.admitted_at, ticket.prefilling = time.monotonic(), True
        ticket.priority = self._users.get(ticket.user)
        ticket.alone = not self._engine  # an idle engine: its prefill time is the rate (ttft.py)
        self._anticipation.admitted()
        self._engine.add(ticket)
        self.active, self.prefilling = self.active + 1, self.prefilling + 1
        self._prefilling_users.add(ticket.user, 1)
        self._users.add(ticket.user, 1)
        metrics.ADMITTED.set(self.active)
        if ticket.admitted is not None and not ticket.admitted.done():
            ticket.admitted.set_result(None)

    def _pump(self) -> None:
        waiting = self._queue.count
        while self._queue.count and self._has_room(user := self._queue.next_user(self._users)):
            self._admit(self._queue.pop(user))
        if self._queue.count != waiting:
            metrics.QUEUE_LENGTH.set(self._queue.count)
            self._queue.tell_positions(self._users)
        self._check_idle()

    def _check_idle(self) -> None:
        for callback in self._on_idle if self.idle else ():
            callback()

    def order(self) -> list[Ticket]:
        """The waiting tickets in the order they will be admitted, if nothing else changes."""
        return self._queue.order(self._users)
