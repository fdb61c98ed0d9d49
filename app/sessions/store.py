"""The one protocol every session store implements (memory now, Redis for several replicas)."""

from __future__ import annotations

from typing import Any, Protocol

from app.sessions.models import Message, Session, SessionChanges


class SessionStore(Protocol):
    async def create(self, session: Session) -> None: ...

    async def get(self, session_id: str) -> Session | None:
        """A copy-safe view of the session, or None if unknown (or expired)."""
        ...

    async def summaries(self, owner: str | None = None) -> list[dict[str, Any]]:
        """Session summaries (id, created, title, messages), newest first; `owner`'s only
        when given."""
        ...

    async def delete(self, session_id: str) -> bool: ...

    async def update_meta(self, session_id: str, changes: SessionChanges) -> bool:
        """Change the session's title, system, params or model (only the keys in `changes`),
        never its messages; False when the session is unknown."""
        ...

    async def append(self, session_id: str, messages: list[Message]) -> None: ...

    async def replace_from(self, session_id: str, message_id: str,
                           messages: list[Message]) -> None:
        """At once: remove the message `message_id` and every message after it, and append
        `messages` in their place. SessionNotFound or MessageNotFound when either is gone."""
        ...

    async def update_message(self, session_id: str, message: Message) -> None:
        """Replace the stored message with the same id (status, content, usage)."""
        ...

    async def count(self) -> int: ...

    async def close(self) -> None: ...
