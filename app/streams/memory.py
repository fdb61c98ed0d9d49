"""Reply logs held in this process: the default, for a single replica.

A log lives while its reply is generated; once the reply ends, its stored message replays it
exactly (app/replies/transcript.py), so nothing is kept for late listeners here."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.leases import REPLY
from app.streams.log import Event, ReplyLog


class MemoryReplyLogs:
    def __init__(self) -> None:
        self._logs: dict[str, ReplyLog] = {}

    def open(self, message_id: str, lease_id: str) -> ReplyLog:
        log = ReplyLog(message_id, lease_id)
        self._logs[message_id] = log
        return log

    def release(self, message_id: str) -> None:
        self._logs.pop(message_id, None)

    def get(self, message_id: str) -> ReplyLog | None:
        return self._logs.get(message_id)

    async def follow(self, message_id: str, lease_id: str, after: int = -1,
                     heartbeat_s: float | None = None, *, kind: str = REPLY
                     ) -> AsyncIterator[Event | None] | None:
        log = self._logs.get(message_id)
        return None if log is None else log.follow(after, heartbeat_s)

    async def recorded(self, message_id: str) -> list[Event]:
        log = self._logs.get(message_id)
        return [] if log is None else list(log.events)

    async def watched_elsewhere(self, message_id: str) -> bool:
        return False

    async def close(self) -> None:
        self._logs.clear()
