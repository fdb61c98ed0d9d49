"""Reading SSE bodies as clients would, with the service's one SSE parser (app/api/http/sse.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

import httpx

from app.api.http.sse import EventParser


def parse_frames(text: str | bytes) -> list[dict[str, Any]]:
    """Each event as {"event", "id", "data"} with its data decoded as JSON."""
    raw = text.encode() if isinstance(text, str) else text
    return [{"event": e.event, "id": e.id, "data": json.loads(e.data)}
            for e in EventParser().feed(raw)]


PROGRESS = ("queued", "prefill")


def numbered(frames: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reply's own events (start, token, done, error): without progress."""
    return [e for e in frames if e["event"] not in PROGRESS]


def check_grammar(frames: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """start, progress (queued*, prefill?, without ids) before the first token, token* (and
    reasoning* with a reasoning parser), done|error, the numbered ones with ids 0..n in order;
    returns the numbered events."""
    events = list(frames)
    assert events, "no events"
    assert events[0]["event"] == "start"
    assert events[-1]["event"] in ("done", "error")
    kinds = [e["event"] for e in events[1:-1]]
    progress = [k for k in kinds if k in PROGRESS]
    assert kinds[: len(progress)] == progress, "progress came after a token"
    assert progress == sorted(progress, key=PROGRESS.index), "queued after prefill"
    assert progress.count("prefill") <= 1
    assert all(e["id"] is None for e in events if e["event"] in PROGRESS)
    events = numbered(events)
    assert all(e["event"] in ("token", "reasoning") for e in events[1:-1])
    assert [int(e["id"]) for e in events] == list(range(len(events)))
    return events


class BackgroundStream:
    """An SSE response read on a thread, so a test can act while it streams (send a signal,
    make other requests); `first_token` is set once a token event has arrived."""

    def __init__(self, client: httpx.Client, method: str, url: str, **kwargs: Any) -> None:
        self.body = bytearray()
        self.first_token = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(client, method, url, kwargs))
        self._thread.start()

    def _read(self, client: httpx.Client, method: str, url: str, kwargs: dict[str, Any]) -> None:
        with client.stream(method, url, **kwargs) as response:
            for chunk in response.iter_bytes():
                self.body.extend(chunk)
                if b"event: token" in self.body:
                    self.first_token.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def events(self, timeout_s: float) -> list[dict[str, Any]]:
        """The whole stream's events, once it has ended."""
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the stream did not end"
        return parse_frames(bytes(self.body))
