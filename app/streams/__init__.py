"""Per-reply event logs (memory, or Redis Streams when replicas share them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from app.streams.log import Event, ReplyLog


class ReplyLogs(Protocol):
    def open(self, message_id: str, session_id: str) -> ReplyLog:
        """A new log for a reply generated here."""
        ...

    def get(self, message_id: str) -> ReplyLog | None:
        """This replica's own log of a reply, if it has one."""
        ...

    async def follow(self, message_id: str, after: int = -1,
                     heartbeat_s: float | None = None) -> AsyncIterator[Event | None] | None:
        """Follow a reply generated here or on another replica; None if no log is known."""
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


__all__ = ["Event", "ReplyLog", "ReplyLogs"]
