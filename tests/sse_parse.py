"""Reading SSE bodies as clients would, with the service's one SSE parser (app/api/sse.py)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from app.api.sse import EventParser


def parse_frames(text: str | bytes) -> list[dict[str, Any]]:
    """Each event as {"event", "id", "data"} with its data decoded as JSON."""
    raw = text.encode() if isinstance(text, str) else text
    return [{"event": e.event, "id": e.id, "data": json.loads(e.data)}
            for e in EventParser().feed(raw)]


def check_grammar(frames: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """start, token*, done|error with ids 0..n in order; returns the events."""
    events = list(frames)
    assert events, "no events"
    assert events[0]["event"] == "start"
    assert events[-1]["event"] in ("done", "error")
    assert all(e["event"] == "token" for e in events[1:-1])
    assert [int(e["id"]) for e in events] == list(range(len(events)))
    return events
