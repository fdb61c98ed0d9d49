"""A session's reply lease (app/leases/, kind `reply`: one reply in flight per session, across
replicas), reached through the session store, where chat.py and replies/live.py still let go of
it and ask for it. Transitional: once they call the `ReplicaCoordinator` (its `leases`) for
both, this goes, and the session store knows nothing of leases."""

from __future__ import annotations

from app.leases import REPLY, Leases


class ReplyClaims:
    leases: Leases  # the replica's leases, shared with every other user of them

    async def release_claim(self, session_id: str, message_id: str) -> None:
        await self.leases.release(REPLY, session_id, message_id)

    async def in_flight(self, session_id: str) -> str | None:
        """The message id of the session's reply being generated, on any replica."""
        return await self.leases.holder(REPLY, session_id)
