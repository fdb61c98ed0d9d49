"""In-memory session store: bounded by a maximum count and an idle TTL, evicting the least
recently used session first, so memory stays bounded under any load."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import replace
from typing import Any

from app.errors import MessageNotFound, SessionNotFound
from app.sessions.models import Message, Session, SessionChanges


class MemorySessionStore:
    def __init__(self, max_sessions: int = 10_000, idle_ttl_s: float = 24 * 3600.0) -> None:
        self.max_sessions = max_sessions
        self.idle_ttl_s = idle_ttl_s
        # session id -> (session, last used, monotonic); most recently used last.
        self._sessions: OrderedDict[str, tuple[Session, float]] = OrderedDict()

    def _touch(self, session_id: str) -> Session | None:
        entry = self._sessions.get(session_id)
        if entry is None:
            return None
        session, last_used = entry
        now = time.monotonic()
        if now - last_used > self.idle_ttl_s:
            del self._sessions[session_id]
            return None
        self._sessions[session_id] = (session, now)
        self._sessions.move_to_end(session_id)
        return session

    def _evict(self) -> None:
        now = time.monotonic()
        while self._sessions:
            oldest_id, (_, last_used) = next(iter(self._sessions.items()))
            if len(self._sessions) > self.max_sessions or now - last_used > self.idle_ttl_s:
                del self._sessions[oldest_id]
            else:
                break

    async def create(self, session: Session) -> None:
        self._sessions[session.id] = (session, time.monotonic())
        self._evict()

    async def get(self, session_id: str) -> Session | None:
        session = self._touch(session_id)
        # A copy of the message list, so a caller's view never edits the stored session.
        return None if session is None else replace(session, messages=list(session.messages))

    async def summaries(self, owner: str | None = None) -> list[dict[str, Any]]:
        self._evict()
        found = [s for s, _ in self._sessions.values() if owner is None or s.owner == owner]
        return [s.summary() for s in sorted(found, key=lambda s: s.created, reverse=True)]

    async def delete(self, session_id: str) -> bool:
        return self._sessions.pop(session_id, None) is not None

    async def append(self, session_id: str, messages: list[Message]) -> None:
        session = self._touch(session_id)
        if session is None:
            raise SessionNotFound(f"session {session_id} not found")
        session.messages.extend(messages)

    async def update_meta(self, session_id: str, changes: SessionChanges) -> bool:
        session = self._touch(session_id)
        if session is None:
            return False
        session.change(changes)
        return True

    async def replace_from(self, session_id: str, message_id: str,
                           messages: list[Message]) -> None:
        session = self._touch(session_id)
        if session is None:
            raise SessionNotFound(f"session {session_id} not found")
        ids = [m.id for m in session.messages]
        if message_id not in ids:
            raise MessageNotFound(f"message {message_id} not found in session {session_id}",
                                  param="replaces")
        session.messages[ids.index(message_id):] = messages

    async def update_message(self, session_id: str, message: Message) -> None:
        session = self._touch(session_id)
        if session is None:
            return  # deleted meanwhile: nothing to keep
        for i in range(len(session.messages) - 1, -1, -1):
            if session.messages[i].id == message.id:
                session.messages[i] = message
                return

    async def count(self) -> int:
        return len(self._sessions)

    async def close(self) -> None:
        self._sessions.clear()
