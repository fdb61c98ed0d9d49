"""Replies across replicas that share one store (Redis): one reply per session through a
leased claim, cancels relayed to the replica generating, and replies left behind by a replica
that died stored as `error` with the text their event log had recorded, never left streaming.

With the memory store there is one replica and these duties reduce to nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from app.replies.live import Replies
from app.replies.transcript import INTERRUPTED, Ending, Transcript, conclude, is_final, replay
from app.sessions.models import Session
from app.sessions.store import SessionStore
from app.streams import Event, ReplyGone, ReplyLogs

log = logging.getLogger("streamchat.replicas")

# A replica refreshes the claims of its replies every LEASE_S / 3; a dead one's run out.
LEASE_S = 15.0
CANCEL_WAIT_S = 10.0


class ReplicaCoordinator:
    def __init__(self, replies: Replies, store: SessionStore, logs: ReplyLogs) -> None:
        self.replies = replies
        self.store = store
        self.logs = logs
        self._duties: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._duties = [asyncio.create_task(self._keep_leases(), name="claim-leases"),
                        asyncio.create_task(self._obey_cancels(), name="cancel-requests")]

    async def stop(self) -> None:
        for task in self._duties:
            task.cancel()
        for task in self._duties:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def claim(self, session_id: str, message_id: str) -> str | None:
        """Claim the session for a new reply; the holder's message id if it is taken."""
        return await self.store.try_claim(session_id, message_id, LEASE_S)

    async def cancel(self, session_id: str, message_id: str | None = None) -> None:
        """Cancel the session's reply in flight, here or on the replica generating it."""
        live = self.replies.of_session(session_id)
        if live is not None and message_id in (None, live.message.id):
            await self.replies.cancel(live)
            return
        holder = await self.store.in_flight(session_id)
        if holder is None or message_id not in (None, holder):
            return
        await self.logs.request_cancel(holder)
        deadline = time.monotonic() + CANCEL_WAIT_S
        # The other replica releases its claim once the cancelled reply is stored: poll for it.
        while time.monotonic() < deadline and await self.store.in_flight(session_id) == holder:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    async def repair_if_abandoned(self, session: Session) -> None:
        """The session's last reply, left queued/streaming by a replica that died: store it as
        an error with the text its event log recorded (what its listeners saw)."""
        message = session.messages[-1] if session.messages else None
        if message is None or is_final(message) or self.replies.of_session(session.id) is not None:
            return
        if await self.store.in_flight(session.id) == message.id:
            return  # another replica is still on it
        transcript = Transcript.of_events(await self.logs.recorded(message.id))
        usage = {"prompt_tokens": 0, "completion_tokens": transcript.token_count, "cached_tokens": 0}
        conclude(message, transcript, Ending("error", "error", INTERRUPTED), usage=usage, timings=None)
        await self.store.update_message(session.id, message)
        log.warning("reply %s was interrupted (its replica stopped); stored as error", message.id)

    def until_gone(self, session_id: str, message_id: str, events: AsyncIterator[Event | None],
                   after: int, model: str) -> AsyncIterator[Event | None]:
        """Follow `events` of a reply generated on another replica; if that replica stops
        before its end, go on from the stored message (repaired as an error if it died)."""

        async def stored(seen: int) -> AsyncIterator[Event | None]:
            session = await self.store.get(session_id)
            message = session.find(message_id) if session is not None else None
            if session is None or message is None:
                return  # deleted (or replaced by a new turn) meanwhile
            await self.repair_if_abandoned(session)
            for event in replay(message, session_id, model, seen):
                yield event

        return follow_until_gone(events, after, stored)

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(LEASE_S / 3)
            for live in self.replies.all():
                try:
                    await self.store.refresh_claim(live.session_id, live.message.id, LEASE_S)
                except Exception:
                    log.exception("refreshing the claim of %s failed", live.message.id)

    async def _obey_cancels(self) -> None:
        async def cancel(message_id: str) -> None:
            for live in self.replies.all():
                if live.message.id == message_id:
                    await self.replies.cancel(live)

        await obey_cancels(self.logs, cancel)


async def obey_cancels(logs: ReplyLogs, cancel: Callable[[str], Awaitable[None]]) -> None:
    """Run `cancel(id)` for each cancel asked anywhere (`logs.request_cancel`), for whatever
    this replica runs under that id; listening again after a failure (Redis restarting)."""
    while True:
        try:
            async for requested in logs.cancel_requests():
                await cancel(requested)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("listening for cancel requests failed; retrying")
            await asyncio.sleep(1.0)


async def follow_until_gone(events: AsyncIterator[Event | None], after: int,
                            rest: Callable[[int], AsyncIterator[Event | None]]
                            ) -> AsyncIterator[Event | None]:
    """Follow `events`, a reply's log as another replica writes it; if that replica stops
    (ReplyGone) before its end reached this one, `rest(seen)` gives what follows the last
    event seen: the one rule for session replies and detached streams alike."""
    seen = after
    try:
        async for event in events:
            if event is not None:
                seen = event.seq
            yield event
    except ReplyGone:
        async for event in rest(seen):
            yield event
