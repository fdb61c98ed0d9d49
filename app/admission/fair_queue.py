"""The admission queue: who goes next, and how many prompts may be prefilled beside whom.

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

A user's own generations wait in the order of their `rank` (OpenAI's `priority`), then of
arrival. Pure bookkeeping: the gate (gate.py) decides when."""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict, deque
from collections.abc import Iterator

from app.admission.ticket import Ticket, UserCounts


class FairQueue:
    def __init__(self) -> None:
        self._waiting: dict[str, deque[Ticket]] = defaultdict(deque)  # per user, in order
        self.count = 0

    def users(self) -> Iterator[str]:
        return iter(self._waiting)

    def tickets(self) -> Iterator[Ticket]:
        return (ticket for queue in self._waiting.values() for ticket in queue)

    def push(self, ticket: Ticket) -> None:
        queue = self._waiting[ticket.user]
        # Behind the user's own of the same or a lower rank; equal ranks keep their order.
        at = next((i for i, other in enumerate(queue) if other.rank > ticket.rank), len(queue))
        queue.insert(at, ticket)
        self.count += 1

    def remove(self, ticket: Ticket) -> bool:
        """Take a ticket that gave up out of the queue; False if it was not waiting."""
        queue = self._waiting.get(ticket.user)
        if queue is None or ticket not in queue:
            return False
        queue.remove(ticket)
        if not queue:
            del self._waiting[ticket.user]
        self.count -= 1
        return True

    def next_user(self, in_engine: UserCounts) -> str:
        """The user whose turn it is (there must be one waiting)."""
        return min(self._waiting, key=lambda u: (in_engine.get(u), self._waiting[u][0].seq))

    def head(self, user: str) -> Ticket:
        """The user's next ticket (the user must be waiting)."""
        return self._waiting[user][0]

    def pop(self, user: str) -> Ticket:
        queue = self._waiting[user]
        ticket = queue.popleft()
        if not queue:
            del self._waiting[user]
        self.count -= 1
        return ticket

    def prefill_room(self, user: str, in_engine: UserCounts, prefilling: UserCounts,
                     prompts: int) -> int:
        """How many prompts may be prefilling when it is `user`'s turn: `prompts`, one more
        for a user with nothing in the engine, none beside a lighter user's prompt, and one at
        a time for a heavier user beside a lighter one."""
        mine = in_engine.get(user)
        if mine == 0:
            return prompts + 1  # a user with nothing in the engine never waits for a heavy one
        if any(in_engine.get(other) < mine for other in prefilling.active if other != user):
            return 0  # a lighter user's prompt is being prefilled: it goes alone
        if prefilling.get(user) and any(
                in_engine.get(other) < mine
                for other in itertools.chain(in_engine.active, self._waiting) if other != user):
            return 0  # beside a lighter user, a heavier one's prompts go one at a time
        return prompts

    def order(self, in_engine: UserCounts) -> list[Ticket]:
        """The waiting tickets in the order they will be admitted, if nothing else changes:
        each admission adds one to its user's count, so users take turns by their counts."""
        heads = [(in_engine.get(user), queue[0].seq, user, 0)
                 for user, queue in self._waiting.items()]
        heapq.heapify(heads)
        ordered: list[Ticket] = []
        while heads:
            count, _, user, index = heapq.heappop(heads)
            queue = self._waiting[user]
            ordered.append(queue[index])
            if index + 1 < len(queue):
                heapq.heappush(heads, (count + 1, queue[index + 1].seq, user, index + 1))
        return ordered

    def tell_positions(self, in_engine: UserCounts) -> None:
        """Tell each waiting ticket that asked its position, when it changed."""
        if not any(t.on_position is not None for t in self.tickets()):
            return
        for position, ticket in enumerate(self.order(in_engine)):
            if ticket.on_position is not None and ticket.position != position:
                ticket.position = position
                ticket.on_position(position)
