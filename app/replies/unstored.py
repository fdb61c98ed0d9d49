"""Replies that ended while the session store was unreachable (Redis away: StoreUnavailable):
told to their listeners all the same (their terminal event), and stored here once the store
answers again, then let go of (`then`: the lease and the log). Until then the reply stays its
replica's (app/replies/live.py): its lease is kept, its session shows it ended, and nothing
else may write its turn. Memory mode never gets here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from app.errors import StoreUnavailable
from app.sessions.models import Message
from app.sessions.store import SessionStore

log = logging.getLogger("streamchat.replies")

# How often storing is tried: refused at once while the store's health says it is away
# (app/store_health.py), so a try costs nothing then; stored about a second after its return.
RETRY_S = 1.0

Then = Callable[[], Awaitable[None]]


class Unstored:
    def __init__(self, store: SessionStore, *, retry_s: float = RETRY_S) -> None:
        self.store = store
        self.retry_s = retry_s
        self._waiting: dict[str, tuple[str, Message, Then, asyncio.Task[None]]] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    async def store_now(self, session_id: str, message: Message) -> bool:
        """Store the ended reply: False while the store is unreachable (to be tried again);
        True once stored, or failed otherwise (logged: trying again would not help)."""
        try:
            await self.store.update_message(session_id, message)
        except StoreUnavailable:
            return False
        except Exception:
            log.exception("storing reply %s failed", message.id)
        return True

    def later(self, session_id: str, message: Message, then: Then) -> None:
        """Store it once the store is back, then call `then`."""
        log.warning("reply %s ended while the store is unreachable: stored once it is back",
                    message.id)
        task = asyncio.create_task(self._store_later(session_id, message, then),
                                   name=f"unstored-{message.id}")
        self._waiting[message.id] = (session_id, message, then, task)

    async def _store_later(self, session_id: str, message: Message, then: Then) -> None:
        while True:
            if await self.store_now(session_id, message):
                break
            await asyncio.sleep(self.retry_s)  # time passing is the behaviour: a try a second
        log.info("reply %s stored, the store being back", message.id)
        try:
            await then()
        finally:
            self._waiting.pop(message.id, None)

    async def close(self) -> None:
        """Shutdown: one last try each; what the store still refuses is logged as lost."""
        waiting, self._waiting = list(self._waiting.values()), {}
        for session_id, message, then, task in waiting:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if await self.store_now(session_id, message):
                await then()
            else:
                log.error("reply %s ended while the store was unreachable, which it still is "
                          "at shutdown: its session keeps it as it was before it ended",
                          message.id)
