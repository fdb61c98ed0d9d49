"""Whether the shared store (Redis) answers: the one owner of that answer.

Every call through the store's client (app/redis_calls.py) asks it first (`check`): while the
store is known to be unreachable, a call raises StoreUnavailable at once (a fast 503 with
Retry-After) instead of waiting for a timeout of its own. A call that finds the store
unreachable says so (`failed`), and from then on one watcher pings it every `every_s` until
it answers again; while it is up, the watcher pings it at the same pace, so that an outage
nobody's call met is seen too. `/ready` answers 503 meanwhile (app/lifecycle.py asks
`unreachable`). Memory mode has no store to lose, and no StoreHealth."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from app.errors import StoreUnavailable
from app.tasks import STOP_BOUND_S, cancel_and_wait

log = logging.getLogger("streamchat.store")

# A ping a second: the store is seen back within about a second of its return (plus the ping).
PING_EVERY_S = 1.0
PING_BOUND_S = 30.0
# What a client is told to wait: about when the next ping may have found the store back.
RETRY_AFTER_S = 2.0


class StoreHealth:
    def __init__(self, ping: Callable[[], Awaitable[object]], *,
                 every_s: float = PING_EVERY_S) -> None:
        self._ping = ping  # raises when the store does not answer (within its client's timeout)
        self.every_s = every_s
        self.unreachable: str | None = None  # why, while the store does not answer; None: up
        self._down_since = 0.0
        self._wake: asyncio.Event | None = None  # made in the watcher's loop, by `start`
        self._watcher: asyncio.Task[None] | None = None

    @property
    def up(self) -> bool:
        return self.unreachable is None

    def check(self) -> None:
        """Raise StoreUnavailable while the store is known unreachable: no call is made."""
        if self.unreachable is not None:
            raise self.error()

    def error(self) -> StoreUnavailable:
        return StoreUnavailable(f"the shared store (Redis) is unreachable "
                                f"({self.unreachable or 'no answer'}); retry later",
                                retry_after_s=RETRY_AFTER_S)

    def failed(self, exc: BaseException) -> None:
        """A call found the store unreachable: down from now on, until a ping answers (the
        watcher pings at once: a lone stale connection clears at the next ping)."""
        self._set_down(_reason(exc))
        if self._wake is not None:
            self._wake.set()

    def start(self) -> None:
        """Start the watcher (in the running loop). Calling it again does nothing."""
        if self._watcher is None or self._watcher.done():
            self._wake = asyncio.Event()
            self._watcher = asyncio.create_task(self._watch(self._wake), name="store-health")

    async def close(self) -> None:
        if self._watcher is not None:
            await cancel_and_wait(self._watcher, bound_s=STOP_BOUND_S)

    async def _watch(self, wake: asyncio.Event) -> None:
        # asyncio.timeout, not wait_for: on 3.11, wait_for returns the inner result when the
        # cancel from `close` lands as that result arrives, and the loop then ran on forever
        # (a shutdown hung 300 s in CI with a watcher pinging every 20 ms).
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.every_s):
                    await wake.wait()
            wake.clear()
            try:
                # Bounded by the client's own timeout; this bound is for a ping that has none.
                async with asyncio.timeout(PING_BOUND_S):
                    await self._ping()
            except Exception as exc:  # whatever the reason, the store does not answer
                self._set_down(_reason(exc))
                continue
            if self.unreachable is not None:
                log.warning("the shared store answers again, after %.1f s unreachable",
                            time.monotonic() - self._down_since)
                self.unreachable = None

    def _set_down(self, reason: str) -> None:
        if self.unreachable is None:
            self._down_since = time.monotonic()
            log.error("the shared store is unreachable (%s): what needs it answers 503 "
                      "store_unavailable until it is back", reason)
        self.unreachable = reason


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, StoreUnavailable) and exc.__cause__ else exc
    text = str(cause).strip()
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__
