"""Session replies across replicas: one reply per session through its lease (app/leases/, kind
`reply`: the session's id, held by the reply's message id), cancels that reach the replica
generating it, and a reply left by a replica that died stored as `error` with the text its
event log had recorded, never left streaming.

With one replica (memory) the lease only says which reply runs; the rest reduces to nothing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from app.leases import REPLY
from app.replies.live import Replies
from app.replies.transcript import INTERRUPTED, Ending, Transcript, conclude, is_final, replay
from app.sessions.models import Session
from app.sessions.store import SessionStore
from app.streams import Event, ReplyLogs, follow_until_gone

log = logging.getLogger("streamchat.replicas")


class ReplicaCoordinator:
    def __init__(self, replies: Replies, store: SessionStore, logs: ReplyLogs) -> None:
        self.replies = replies
        self.store = store
        self.logs = logs
        self.leases = replies.leases  # the replica's, shared with every other user of them
        self.leases.serve(REPLY, self._stop)

    async def start(self) -> None:
        await self.leases.start()

    async def stop(self) -> None:
        """Nothing of its own to stop: the leases are closed by whoever built them."""

    async def claim(self, session_id: str, message_id: str) -> str | None:
        """Claim the session for a new reply; the holder's message id if it is taken."""
        return await self.leases.acquire(REPLY, session_id, message_id)

    async def holder(self, session_id: str) -> str | None:
        """The message id of the session's reply being generated, on any replica."""
        return await self.leases.holder(REPLY, session_id)

    async def release(self, session_id: str, message_id: str) -> None:
        """Let go of the session's lease (a reply that never started)."""
        await self.leases.release(REPLY, session_id, message_id)

    async def cancel(self, session_id: str, message_id: str | None = None) -> None:
        """Cancel the session's reply in flight (only `message_id`, when given), here or on
        the replica generating it; returns once it is stored (a few seconds at most)."""
        await self.leases.cancel(REPLY, session_id, message_id)

    async def _stop(self, session_id: str) -> None:
        live = self.replies.of_session(session_id)
        if live is not None:
            await self.replies.cancel(live)

    async def repair_if_abandoned(self, session: Session) -> None:
        """The session's last reply, left queued/streaming by a replica that died: store it as
        an error with the text its event log recorded (what its listeners saw)."""
        message = session.messages[-1] if session.messages else None
        if message is None or is_final(message) or self.replies.of_session(session.id) is not None:
            return
        if not await self.leases.gone(REPLY, session.id, message.id):
            return  # a replica is still on it
        stored = await self.store.get(session.id)  # it may have ended just before its lease
        current = stored.find(message.id) if stored is not None else None
        if current is None:
            return  # deleted (or replaced by a new turn) meanwhile
        if not is_final(current):
            transcript = Transcript.of_events(await self.logs.recorded(message.id))
            usage = {"prompt_tokens": 0, "completion_tokens": transcript.token_count,
                     "cached_tokens": 0}
            conclude(current, transcript, Ending("error", "error", INTERRUPTED), usage=usage,
                     timings=None)
            await self.store.update_message(session.id, current)
            log.warning("reply %s was interrupted (its replica stopped); stored as error",
                        message.id)
        session.messages[-1] = current

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
            message = session.find(message_id) or message
            for event in replay(message, session_id, model, seen):
                yield event

        return follow_until_gone(events, after, stored)
