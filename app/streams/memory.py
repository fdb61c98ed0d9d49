"""Reply logs held in this process: the default, for a single replica.

A log lives while its reply is generated; once the reply ends, its stored message replays it
exactly (app/replies/transcript.py), so nothing is kept for late listeners here."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.streams.log import Event, ReplyLog


class MemoryReplyLogs:
    def __init__(self) -> None:
        self._logs: dict[str, ReplyLog] = {}

    def open(self, message_id: str, session_id: str) -> ReplyLog:
        log = ReplyLog(message_id, session_id)
        self._logs[message_id] = log
        return log

    def release(self, message_id: str) -> None:
        self._logs.pop(message_id, None)

    def get(self, message_id: str) -> ReplyLog | None:
        return self._logs.get(message_id)

    async def follow(self, message_id: str, session_id: str, after: int = -1,
                     heartbeat_s: float | None = None) -> AsyncIterator[Event | None] | None:
        log = self._logs.get(message_id)
        return None if log is None else log.follow(after, heartbeat_s)

    async def recorded(self, message_id: str) -> list[Event]:
        log = self._logs.get(message_id)
        return [] if log is None else list(log.events)

    async def watched_elsewhere(self, message_id: str) -> bool:
        return False

    async def request_cancel(self, message_id: str) -> None:
        pass  # one replica: the chat service cancels its own replies directly

    async def cancel_requests(self) -> AsyncIterator[str]:
        return
        yield  # an async generator that never yields

    async def close(self) -> None:
        self._logs.clear()
