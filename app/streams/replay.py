"""A finished reply's events rebuilt from its stored message, for when its log has expired."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from app.sessions.models import FINAL_STATUSES, Message
from app.streams.log import Event


def replay_events(message: Message, session_id: str, model: str) -> list[Event]:
    """A finished reply's events rebuilt from the stored message, when its log has expired."""
    events: list[tuple[str, dict[str, Any]]] = [
        ("start", {"message_id": message.id, "session_id": session_id, "model": model})]
    usage = message.usage or {}
    if message.content:
        events.append(("token", {"text": message.content,
                                 "n": usage.get("completion_tokens", 0)}))
    if message.status == "error":
        events.append(("error", {"code": "engine_error", "message": "the reply failed"}))
    elif message.status in FINAL_STATUSES:
        events.append(("done", {"finish_reason": message.finish_reason or message.status,
                                "usage": usage, "timings": message.timings or {}}))
    return [Event(i, kind, data, orjson.dumps(data)) for i, (kind, data) in enumerate(events)]


async def replay(events: list[Event], after: int) -> AsyncIterator[Event | None]:
    for event in events:
        if event.seq > after:
            yield event
