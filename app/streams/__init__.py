"""Per-reply event logs: in memory, or mirrored to Redis Streams when replicas share them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from app.streams.log import Event, ReplyGone, ReplyLog


class ReplyLogs(Protocol):
    def open(self, message_id: str, session_id: str) -> ReplyLog:
        """A new log for a reply generated here."""
        ...

    def release(self, message_id: str) -> None:
        """The reply ended (its stored message now replays it): new followers no longer find
        its log here; those following it read on to its end."""
        ...

    def get(self, message_id: str) -> ReplyLog | None:
        """This replica's own log of a reply in progress, if it has one."""
        ...

    async def follow(self, message_id: str, session_id: str, after: int = -1,
                     heartbeat_s: float | None = None) -> AsyncIterator[Event | None] | None:
        """Follow a reply in progress, here or on another replica; None if no replica can be
        generating it. A remote follow raises ReplyGone if its replica stops mid-reply."""
        ...

    async def recorded(self, message_id: str) -> list[Event]:
        """Every event recorded for a reply so far (empty if none)."""
        ...

    async def watched_elsewhere(self, message_id: str) -> bool:
        """Whether a listener on another replica follows this reply."""
        ...

    async def request_cancel(self, message_id: str) -> None:
        """Ask whichever replica generates this reply to cancel it."""
        ...

    def cancel_requests(self) -> AsyncIterator[str]:
        """Message ids whose cancel was requested anywhere (runs until closed)."""
        ...

    async def close(self) -> None: ...


__all__ = ["Event", "ReplyGone", "ReplyLog", "ReplyLogs"]
