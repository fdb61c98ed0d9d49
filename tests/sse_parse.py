"""A strict parser of the SSE wire format, used by tests to read what clients would read."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def parse_frames(text: str) -> list[dict[str, Any]]:
    """Each frame as {"event", "id", "data"}; comment frames as {"comment": ...}."""
    frames: list[dict[str, Any]] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        frame: dict[str, Any] = {}
        data_lines: list[str] = []
        for line in block.split("\n"):
            if line.startswith(":"):
                frame["comment"] = line[1:].strip()
                continue
            field, _, value = line.partition(": ")
            if field == "data":
                data_lines.append(value)
            elif field in ("event", "id"):
                frame[field] = value
            else:
                raise AssertionError(f"unexpected SSE line {line!r}")
        if data_lines:
            frame["data"] = json.loads("\n".join(data_lines))
        frames.append(frame)
    return frames


def check_grammar(frames: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """start, token*, done|error with ids 0..n in order; returns the events (no comments)."""
    events = [f for f in frames if "comment" not in f]
    assert events, "no events"
    assert events[0]["event"] == "start"
    assert events[-1]["event"] in ("done", "error")
    assert all(e["event"] == "token" for e in events[1:-1])
    assert [int(e["id"]) for e in events] == list(range(len(events)))
    return events
