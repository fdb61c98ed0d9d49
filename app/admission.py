"""Admission control: which generation goes into the engine next, and who is told to come back.

Every generation (session replies and OpenAI completions alike) passes this gate before it
reaches the engine. Two limits hold at once:

- `max_active`: generations in the engine (decoding or prefilling); by default the engine's own
  `max_num_seqs`, so the engine never queues work it cannot run;
- `max_prefilling`: generations in the engine that have no first token yet. Keeping the
  engine's prompt queue this short is what makes the first token come first: a prompt waits
  here, in a fair order, instead of behind every other prompt in the engine, and the
  `prefill` event means what it says (the engine starts on it at its next step). A deep queue
  is not paced that finely: at most `PACING_ROUNDS` rounds of prompts wait here, so a burst
  of N prompts enters about N / PACING_ROUNDS at a time (its last prompt would otherwise wait
  for many small engine steps instead of a few big ones).

Behind the gate waits a bounded queue: the generations that will find a place in the engine
once those in it have ended, plus at most `max_queue` more; past it the answer is `QueueFull`
at once (429 with Retry-After), never a hang.

The queue is fair between users (an API key, else the OpenAI `user` field or the client's
address): the next generation admitted is the one whose user has the fewest generations in
the engine, the oldest first among equals. One user with 32 streams therefore waits behind a
user with none, and a user's own requests keep their order. A user with nothing in the engine
may also take one prompt place beyond `max_prefilling`, and while a user's prompt is being
prefilled no prompt of a user with more generations in the engine joins it: its first token
does not wait for a heavy user's prompts (the engine's own queue puts it first too:
`priority`). And while a lighter user is present (in the engine or waiting), a heavier user's
prompts are prefilled one at a time: a light user's prompt arrives between engine steps, so it
waits for the step running then and shares its own with the heavy prompts already in the
engine; keeping those to one keeps both steps short.

Background work (warming a conversation's prefix) runs only while nobody waits and no prompt
is being prefilled, and is stopped the moment a generation arrives.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from app import metrics
from app.engine.base import Delta, Engine, GenerationParams
from app.errors import QueueFull

# A position callback: how many generations are ahead of this one (0: it goes next).
OnPosition = Callable[[int], None]
# How many rounds of prompts a deep queue is paced in (see the module docstring). On a 2-core
# AVX2 CPU (docs/VLLM-CPU.md), pacing a cold burst of 64 prompts 4 at a time gave the lowest
# median TTFT but a 30% longer tail than the engine's own big steps; a bounded number of rounds
# keeps the small steps for a short queue and a few big ones for a burst.
PACING_ROUNDS = 4


@dataclass(eq=False, slots=True)
class Ticket:
    """One generation's place: waiting, then admitted (in the engine), then released."""

    user: str
    seq: int
    enqueued_at: float
    on_position: OnPosition | None = None
    admitted: asyncio.Future[None] | None = None  # resolved when it may enter the engine
    admitted_at: float | None = None
    prefilling: bool = False  # in the engine without its first token
    released: bool = False
    position: int | None = None  # the last position told
    # The engine's priority (lower first): its user's generations in the engine when it was
    # admitted, so the engine's own queue is fair too.
    priority: int = 0
    # The client's own priority (OpenAI requests' `priority`, lower first): it orders the
    # user's own waiting generations, never one user's against another's.
    rank: int = 0

    @property
    def waited_s(self) -> float:
        """Seconds spent waiting for admission (so far, while it still waits)."""
        end = self.admitted_at if self.admitted_at is not None else time.monotonic()
        return max(0.0, end - self.enqueued_at)


@dataclass(slots=True)
class _Users:
    """Per-user counts of generations in the engine (dropped at 0, so the map stays small)."""

    active: dict[str, int] = field(default_factory=dict)

    def get(self, user: str) -> int:
        return self.active.get(user, 0)

    def add(self, user: str, delta: int) -> None:
        count = self.active.get(user, 0) + delta
        if count > 0:
            self.active[user] = count
        else:
            self.active.pop(user, None)


class Admission:
    def __init__(self, *, max_active: int, max_queue: int, max_prefilling: int,
                 typical_generation_s: float = 2.0) -> None:
        if max_active < 1 or max_queue < 0 or max_prefilling < 1:
            raise ValueError(f"need max_active >= 1, max_queue >= 0, max_prefilling >= 1; got "
                             f"{max_active}, {max_queue}, {max_prefilling}")
        self.max_active = max_active
        self.max_queue = max_queue
        self.max_prefilling = max_prefilling
        # A guess at how long one generation holds its place, for Retry-After; refined from
        # what the engine actually does (an average of recent generations).
        self.typical_generation_s = typical_generation_s
        self.active = 0
        self.prefilling = 0
        self._users = _Users()
        self._prefilling_users = _Users()  # per user: its prompts in the engine, no token yet
        self._waiting: dict[str, deque[Ticket]] = defaultdict(deque)  # per user, oldest first
        self._waiting_count = 0
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
        return self._waiting_count

    @property
    def idle(self) -> bool:
        """Nobody waits and no prompt is being prefilled: background work may run."""
        return self._waiting_count == 0 and self.prefilling == 0

    def on_busy(self, callback: Callable[[], None]) -> None:
        """Called when a generation arrives (background work must stop)."""
        self._on_busy.append(callback)

    def on_idle(self, callback: Callable[[], None]) -> None:
        """Called when the gate becomes idle (background work may start)."""
        self._on_idle.append(callback)

    def retry_after_s(self) -> float:
        """How long a refused client should wait: about the time for the queue to move by
        its own length, at the rate generations leave the engine."""
        per_slot = self.typical_generation_s / max(1, self.max_active)
        return max(1.0, math.ceil(per_slot * max(1, self._waiting_count)))

    # -- a generation's life ----------------------------------------------------------------

    def enqueue(self, user: str, on_position: OnPosition | None = None, *,
                rank: int = 0) -> Ticket:
        """A place for one generation of `user`: admitted at once when there is room and
        nobody waits, else queued; QueueFull at once when the queue is full. `rank` (lower
        first) orders it among the user's own waiting generations."""
        ticket = Ticket(user, next(self._seq), time.monotonic(), on_position, rank=rank)
        ticket.admitted = asyncio.get_running_loop().create_future()
        for callback in self._on_busy:
            callback()
        # max_queue counts those waiting for a place in the engine; a prompt only paced by
        # max_prefilling while places are free does not use it up.
        if self.active + self._waiting_count >= self.max_active + self.max_queue:
            retry = self.retry_after_s()
            raise QueueFull(f"the server is at capacity: {self._waiting_count} requests are "
                            f"waiting already; retry in {math.ceil(retry)} s", retry_after_s=retry)
        queue = self._waiting[user]
        # Behind the user's own of the same or a lower rank; equal ranks keep their order.
        at = next((i for i, other in enumerate(queue) if other.rank > rank), len(queue))
        queue.insert(at, ticket)
        self._waiting_count += 1
        self._pump()  # in fair order: this one, if it is next and there is room
        if ticket.admitted_at is None:
            metrics.QUEUE_LENGTH.set(self._waiting_count)
            self._tell_positions()
        return ticket

    def watch(self, ticket: Ticket, on_position: OnPosition) -> None:
        """Tell `on_position` where the ticket stands now, and whenever that changes."""
        ticket.on_position = on_position
        if ticket.admitted_at is None and not ticket.released:
            ticket.position = None
            self._tell_positions()

    async def generate(self, ticket: Ticket, engine: Engine, prompt_ids: Sequence[int],
                       params: GenerationParams, request_id: str, *,
                       on_admitted: Callable[[], None] | None = None) -> AsyncIterator[Delta]:
        """The one way a generation reaches the engine: wait for admission, stream, free the
        prompt's place at the first token and the generation's at the end. The last delta's
        `queue_s` counts the wait here as well as the engine's own."""
        await self.wait(ticket)
        if ticket.released:  # given up (released) while it waited: nothing to generate
            return
        if on_admitted is not None:
            on_admitted()
        started, first = time.monotonic(), True
        try:
            async for delta in engine.stream(prompt_ids, params, request_id, ticket.priority):
                if first:
                    first = False
                    self.first_token(ticket)
                if delta.queue_s is not None:
                    delta.queue_s += ticket.waited_s
                yield delta
        finally:
            self.release(ticket, time.monotonic() - started)

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

    def first_token(self, ticket: Ticket) -> None:
        """The engine produced the ticket's first token: its prompt is prefilled."""
        if ticket.prefilling:
            self._prefilled(ticket)
            self._pump()

    def _prefilled(self, ticket: Ticket) -> None:
        ticket.prefilling = False
        self.prefilling -= 1
        self._prefilling_users.add(ticket.user, -1)

    def release(self, ticket: Ticket, generation_s: float | None = None) -> None:
        """The generation ended (or gave up waiting): its place goes to the next one."""
        if ticket.released:
            return
        ticket.released = True
        if ticket.admitted_at is None:  # still waiting: leave the queue
            queue = self._waiting.get(ticket.user)
            if queue is not None and ticket in queue:
                queue.remove(ticket)
                if not queue:
                    del self._waiting[ticket.user]
                self._waiting_count -= 1
                metrics.QUEUE_LENGTH.set(self._waiting_count)
            if ticket.admitted is not None and not ticket.admitted.done():
                ticket.admitted.cancel()
            self._tell_positions()
            self._check_idle()
            return
        self.active -= 1
        self._users.add(ticket.user, -1)
        metrics.ADMITTED.set(self.active)
        if ticket.prefilling:
            self._prefilled(ticket)
        if generation_s is not None and generation_s > 0:
            # An exponential average: Retry-After follows what the engine does now.
            self.typical_generation_s += 0.1 * (generation_s - self.typical_generation_s)
        self._pump()

    # -- the gate -------------------------------------------------------------------------------

    def _has_room(self, user: str) -> bool:
        prefill_room = self.max_prefilling
        if PACING_ROUNDS:
            prefill_room = max(prefill_room, math.ceil(self._waiting_count / PACING_ROUNDS))
        mine = self._users.get(user)
        if mine == 0:
            prefill_room += 1  # a user with nothing in the engine never waits for a heavy one
        elif any(self._users.get(other) < mine for other in self._prefilling_users.active
                 if other != user):
            return False  # a lighter user's prompt is being prefilled: it goes alone
        elif self._prefilling_users.get(user) and any(
                self._users.get(other) < mine
                for other in itertools.chain(self._users.active, self._waiting) if other != user):
            return False  # beside a lighter user, a heavier one's prompts go one at a time
        return self.active < self.max_active and self.prefilling < prefill_room

    def _admit(self, ticket: Ticket) -> None:
        ticket.admitted_at = time.monotonic()
        ticket.prefilling = True
        ticket.priority = self._users.get(ticket.user)
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
        while self._waiting_count:
            user = min(self._waiting, key=lambda u: (self._users.get(u), self._waiting[u][0].seq))
            if not self._has_room(user):
                break
            queue = self._waiting[user]
            ticket = queue.popleft()
            if not queue:
                del self._waiting[user]
            self._waiting_count -= 1
            self._admit(ticket)
            moved = True
        if moved:
            metrics.QUEUE_LENGTH.set(self._waiting_count)
            self._tell_positions()
        self._check_idle()

    def _check_idle(self) -> None:
        if self.idle:
            for callback in self._on_idle:
                callback()

    def order(self) -> list[Ticket]:
        """The waiting tickets in the order they will be admitted, if nothing else changes:
        each admission adds one to its user's count, so users take turns by their counts."""
        counts = {user: self._users.get(user) for user in self._waiting}
        heads = [(counts[user], queue[0].seq, user, 0) for user, queue in self._waiting.items()]
        heapq.heapify(heads)
        ordered: list[Ticket] = []
        while heads:
            count, _, user, index = heapq.heappop(heads)
            queue = self._waiting[user]
            ordered.append(queue[index])
            if index + 1 < len(queue):
                heapq.heappush(heads, (count + 1, queue[index + 1].seq, user, index + 1))
        return ordered

    def _tell_positions(self) -> None:
        """Tell each waiting ticket that asked its position, when it changed."""
        if not any(t.on_position is not None for q in self._waiting.values() for t in q):
            return
        for position, ticket in enumerate(self.order()):
            if ticket.on_position is not None and ticket.position != position:
                ticket.position = position
                ticket.on_position(position)
