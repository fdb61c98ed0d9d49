"""Per-reply event logs: in memory, or mirrored to Redis Streams when replicas share them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from app.leases import REPLY
from app.streams.log import Event, ReplyGone, ReplyLog, follow_until_gone


class ReplyLogs(Protocol):
    """Logs are named by their reply's id (`message_id`: a session reply's message, a detached
    stream's own id); the work writing one holds a lease (app/leases/) under `(kind, lease_id)`
    with that id as holder: a session reply's is `("reply", its session id)`, a detached
    stream's `("stream", its own id)`. That lease is how a follower on another replica tells
    work still generated from work whose replica stopped."""

    def open(self, message_id: str, lease_id: str) -> ReplyLog:
        """A new log for a reply generated here."""
        ...

    def release(self, message_id: str) -> None:
        """The reply ended (its stored message now replays it): new followers no longer find
        its log here; those following it read on to its end."""
        ...

    def get(self, message_id: str) -> ReplyLog | None:
        """This replica's own log of a reply in progress, if it has one."""
        ...

    async def follow(self, message_id: str, lease_id: str, after: int = -1,
                     heartbeat_s: float | None = None, *, kind: str = REPLY
                     ) -> AsyncIterator[Event | None] | None:
        """Follow a reply in progress, here or on another replica; None if no replica can be
        generating it. A remote follow raises ReplyGone once the lease `(kind, lease_id)` is
        no longer held by `message_id` before the reply's end reached it (it ended, or its
        replica died)."""
        ...

    async def recorded(self, message_id: str) -> list[Event]:
        """Every event recorded for a reply so far (empty if none)."""
        ...

    async def watched_elsewhere(self, message_id: str) -> bool:
        """Whether a listener on another replica follows this reply."""
        ...

    async def close(self) -> None: ...


__all__ = ["Event", "ReplyGone", "ReplyLog", "ReplyLogs", "follow_until_gone"]
