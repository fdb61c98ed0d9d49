"""One generation's place at the admission gate, and the per-user counts the fair order uses."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# A position callback: how many generations are ahead of this one (0: it goes next).
OnPosition = Callable[[int], None]
# The engine's priority of background work (a prefix warm-up): after every generation.
BACKGROUND_PRIORITY = 1 << 20


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
    # Background work: admitted only while the gate is idle, counted nowhere, last in the
    # engine's queue, and stopped by the gate's owner when a generation arrives.
    background: bool = False
    # For the first-token objective (objective.py): the prompt's size (estimated from its
    # characters until it is tokenized), the most tokens it may make and those made so far,
    # its predicted TTFT, whether it entered an engine with no other prompt in prefill.
    prompt_chars: int = 0
    prompt_tokens: int = 0
    max_tokens: int = 512
    generated: int = 0
    predicted_s: float | None = None
    alone: bool = False
    last_token_at: float | None = None

    @property
    def waited_s(self) -> float:
        """Seconds spent waiting for admission (so far, while it still waits)."""
        end = self.admitted_at if self.admitted_at is not None else time.monotonic()
        return max(0.0, end - self.enqueued_at)


@dataclass(slots=True)
class UserCounts:
    """Per-user counts of generations (dropped at 0, so the map stays small)."""

    active: dict[str, int] = field(default_factory=dict)

    def get(self, user: str) -> int:
        return self.active.get(user, 0)

    def add(self, user: str, delta: int) -> None:
        count = self.active.get(user, 0) + delta
        if count > 0:
            self.active[user] = count
        else:
            self.active.pop(user, None)
