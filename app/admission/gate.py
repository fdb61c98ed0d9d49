"""Admission control: which generation goes into the engine next, and who is told to come back.

Every generation passes this gate on its way to the engine (app/generation.py holds a ticket
from it for its whole life). Two limits hold at once:

- `max_active`: generations in the engine (decoding or prefilling); by default the engine's own
  `max_num_seqs`, so the engine never queues work it cannot run;
- the pacing of prompts (pacing.py): those in the engine without a first token, at most
  `max_prefilling` and about a second of prefill. A prompt waits here, in a fair order, not
  behind every prompt in the engine: its first token comes first, `prefill` means what it
  says, and the gaps between running streams' tokens stay short.

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
from app.admission.fair_queue import FairQueue
from app.admission.objective import Objective
from app.admission.pacing import Pacing
from app.admission.ticket import BACKGROUND_PRIORITY, OnPosition, Ticket, UserCounts
from app.admission.ttft import first_end_s
from app.errors import QueueFull


class Admission:
    def __init__(self, *, max_active: int, max_queue: int, max_prefilling: int,
                 objective: Objective | None = None) -> None:
        if max_active < 1 or max_queue < 0 or max_prefilling < 1:
            raise ValueError(f"need max_active >= 1, max_queue >= 0, max_prefilling >= 1; got "
                             f"{max_active}, {max_queue}, {max_prefilling}")
        self.max_active = max_active
        self.max_queue = max_queue
        self.pacing = Pacing(max_prefilling)
        self.objective = objective if objective is not None else Objective()
        self.active = 0
        self.prefilling = 0
        self._engine: set[Ticket] = set()  # admitted, not yet released
        self._users = UserCounts()
        self._prefilling_users = UserCounts()  # per user: its prompts in the engine, no token yet
        self._queue = FairQueue()
        self._seq = itertools.count()
        self._on_busy: list[Callable[[], None]] = []
        self._on_idle: list[Callable[[], None]] = []

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
        self._on_busy.append(callback)  # a generation arrived: background work must stop

    def on_idle(self, callback: Callable[[], None]) -> None:
        self._on_idle.append(callback)  # the gate became idle: background work may start

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
        for callback in self._on_busy:
            callback()
        self.check_room()
        self._queue.push(ticket)
        if refusal := self.objective.refusal(ticket, self.order(), self._engine, self.max_active):
            self._queue.remove(ticket)
            raise refusal
        self._pump()  # in fair order: this one, if it is next and there is room
        if ticket.admitted_at is None:
            metrics.QUEUE_LENGTH.set(self._queue.count)
            self._tell_positions()
        return ticket

    def background(self) -> Ticket | None:
        """A place for background work (a prefix warm-up), only while the gate is idle:
        admitted at once, counted nowhere (it holds no one's place), last in the engine's
        queue. None when the gate is busy. Its owner stops it when `on_busy` fires."""
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
            self._tell_positions()

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
            self._pump()

    def _prefilled(self, ticket: Ticket) -> None:
        ticket.prefilling = False
        self.prefilling -= 1
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
            self._tell_positions()
            self._check_idle()
            return
        self.active -= 1
        self._engine.discard(ticket)
        self._users.add(ticket.user, -1)
        metrics.ADMITTED.set(self.active)
        if ticket.prefilling:
            self._prefilled(ticket)
        self._pump()

    # -- the gate -------------------------------------------------------------------------------

    def _has_room(self, user: str) -> bool:
        if self.active >= self.max_active:
            return False
        waiting = self._queue.count
        prompts = self.pacing.prompts(waiting)
        if self.prefilling >= self._queue.prefill_room(user, self._users,
                                                       self._prefilling_users, prompts):
            return False
        limit = self.pacing.tokens(waiting, self.active - self.prefilling)
        if limit is None or self.prefilling == 0 or self._users.get(user) == 0:
            return True  # alone, or a user with nothing in the engine: not held (pacing.py)
        tokens = sum(t.prompt_tokens for t in self._engine if t.prefilling)
        return tokens + self._queue.head(user).prompt_tokens <= limit

    def _admit(self, ticket: Ticket) -> None:
        ticket.admitted_at = time.monotonic()
        ticket.prefilling = True
        ticket.priority = self._users.get(ticket.user)
        ticket.alone = not self._engine  # an idle engine: its prefill time is the rate (ttft.py)
        self._engine.add(ticket)
        self.active += 1
        self.prefilling += 1
        self._prefilling_users.add(ticket.user, 1)
        self._users.add(ticket.user, 1)
        metrics.ADMITTED.set(self.active)
        assert ticket.admitted is not None
        if not ticket.admitted.done():
            ticket.admitted.set_result(None)

    def _pump(self) -> None:
        moved = False
        while self._queue.count:
            user = self._queue.next_user(self._users)
            if not self._has_room(user):
                break
            self._admit(self._queue.pop(user))
            moved = True
        if moved:
            metrics.QUEUE_LENGTH.set(self._queue.count)
            self._tell_positions()
        self._check_idle()

    def _check_idle(self) -> None:
        if self.idle:
            for callback in self._on_idle:
                callback()

    def order(self) -> list[Ticket]:
        """The waiting tickets in the order they will be admitted, if nothing else changes."""
        return self._queue.order(self._users)

    def _tell_positions(self) -> None:
        """Tell each waiting ticket that asked its position, when it changed."""
        if not any(t.on_position is not None for t in self._queue.tickets()):
            return
        for position, ticket in enumerate(self.order()):
            if ticket.on_position is not None and ticket.position != position:
                ticket.position = position
                ticket.on_position(position)
