"""The one protocol every session store implements (memory now, Redis for several replicas)."""

from __future__ import annotations

from typing import Protocol

from app.sessions.models import Message, Session


class SessionStore(Protocol):
    async def create(self, session: Session) -> None: ...

    async def get(self, session_id: str) -> Session | None:
        """A copy-safe view of the session, or None if unknown (or expired)."""
        ...

    async def list(self, owner: str | None = None) -> list[Session]:
        """Sessions, newest first; only `owner`'s when given."""
        ...

    async def delete(self, session_id: str) -> bool: ...

    async def append(self, session_id: str, messages: list[Message]) -> None: ...

    async def update_message(self, session_id: str, message: Message) -> None:
        """Replace the stored message with the same id (status, content, usage)."""
        ...

    async def count(self) -> int: ...

    async def close(self) -> None: ...
