"""Reply logs held in this process: the default, for a single replica."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator

from app.streams.log import Event, ReplyLog


class MemoryReplyLogs:
    """Live and recently finished reply logs, by message id. Finished ones are kept for
    `keep_finished_s` so a late reconnect replays the exact events; after that a replay is
    rebuilt from the stored message."""

    def __init__(self, keep_finished_s: float = 300.0, max_finished: int = 1000) -> None:
        self.keep_finished_s = keep_finished_s
        self.max_finished = max_finished
        self._logs: OrderedDict[str, ReplyLog] = OrderedDict()

    def open(self, message_id: str, session_id: str) -> ReplyLog:
        self._prune()
        log = ReplyLog(message_id, session_id)
        self._logs[message_id] = log
        return log

    def get(self, message_id: str) -> ReplyLog | None:
        return self._logs.get(message_id)

    def _prune(self) -> None:
        now = time.monotonic()
        finished = [mid for mid, log in self._logs.items() if log.finished]
        excess = len(finished) - self.max_finished
        for mid in finished:
            log = self._logs[mid]
            expired = log.finished_at is not None and now - log.finished_at > self.keep_finished_s
            if expired or excess > 0:
                del self._logs[mid]
                excess -= 1

    async def follow(self, message_id: str, after: int = -1,
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
