"""What a reply said, event by event, and how it ended: the one place a reply's ending and its
terminal event are decided, whether it finished here, was cancelled, or was left by a replica
that died, and the exact replay of a finished reply from its stored message.

Events are numbered: `start` is 0, each `token` (or `reasoning`) event the next, and the
terminal event (`done` or `error`) follows the last token event. The stored message keeps its
token events as `spans` ("chars[:tokens]" each, about 2-3 bytes per event; "r" first for a
`reasoning` event, whose text is the message's `reasoning`, never its `content`), so its events
can be rebuilt with their original ids and text long after the live log is gone: a client
resuming after any id gets exactly what it had not seen, and always the terminal event last.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from app.sessions.models import FINAL_STATUSES, Message, Status
from app.streams.log import Event

INTERRUPTED = {"code": "interrupted", "message": "the replica generating this reply stopped"}
SHUT_DOWN = {"code": "shutting_down",
             "message": "the server stopped before this reply finished; send the message again"}


@dataclass(slots=True)
class Transcript:
    """The token events of a reply: their text, how many tokens each carried, and which were
    reasoning (with a reasoning parser)."""

    parts: list[str] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    thought: list[bool] = field(default_factory=list)  # a `reasoning` event, not a `token`

    def add(self, text: str, tokens: int, reasoning: bool = False) -> None:
        self.parts.append(text)
        self.tokens.append(tokens)
        self.thought.append(reasoning)

    @property
    def text(self) -> str:
        """The answer: every `token` event's text."""
        if not any(self.thought):
            return "".join(self.parts)
        return "".join(p for p, r in zip(self.parts, self.thought, strict=True) if not r)

    @property
    def reasoning(self) -> str:
        return "".join(p for p, r in zip(self.parts, self.thought, strict=True) if r)

    @property
    def token_count(self) -> int:
        return sum(self.tokens)

    @classmethod
    def of_events(cls, events: Iterable[Event]) -> Transcript:
        transcript = cls()
        for event in events:
            if event.type in ("token", "reasoning"):
                transcript.add(str(event.data.get("text", "")), int(event.data.get("n", 1)),
                               event.type == "reasoning")
        return transcript

    def spans(self) -> str:
        return ",".join(("r" if r else "") + (str(len(p)) if n == 1 else f"{len(p)}:{n}")
                        for p, n, r in zip(self.parts, self.tokens, self.thought, strict=True))


@dataclass(frozen=True, slots=True)
class Ending:
    """How a reply ended: status done | cancelled | error."""

    status: Status
    finish_reason: str
    error: dict[str, str] | None = None


def conclude(message: Message, transcript: Transcript, ending: Ending, *,
             usage: dict[str, int], timings: dict[str, float] | None) -> None:
    """Write the reply's ending into its message, ready to be stored."""
    message.content = transcript.text
    message.reasoning = transcript.reasoning or None
    message.spans = transcript.spans()
    message.status, message.finish_reason, message.error = (
        ending.status, ending.finish_reason, ending.error)
    message.usage, message.timings = usage, timings


def terminal_event(message: Message) -> tuple[str, dict[str, Any]]:
    """The terminal event of a stored reply: `done`, or `error` with its code (a reply that
    failed, was interrupted, or was stopped by a shutdown)."""
    if message.error is None and message.status in ("done", "cancelled"):
        return "done", {"finish_reason": message.finish_reason or message.status,
                        "usage": message.usage or {}, "timings": message.timings or {}}
    return "error", dict(message.error or INTERRUPTED)


def replay(message: Message, session_id: str, model: str, after: int = -1) -> Iterator[Event]:
    """A finished reply's events after `after`, rebuilt exactly, ending with its terminal event
    (sent even to a client that had seen it, so that every resume ends; after every id the
    client had, for a reply whose replica died)."""
    spans = _spans(message)
    if after < 0:
        yield Event.of(0, "start", {"message_id": message.id, "session_id": session_id,
                                    "model": message.model or model})
    offsets = {False: 0, True: 0}  # in the content, in the reasoning
    for seq, (chars, tokens, thought) in enumerate(spans, start=1):
        if seq > after:
            text = (message.reasoning or "") if thought else message.content
            at = offsets[thought]
            yield Event.of(seq, "reasoning" if thought else "token",
                           {"text": text[at:at + chars], "n": tokens})
        offsets[thought] += chars
    end = len(spans) + 1
    if message.error is not None and message.error.get("code") == INTERRUPTED["code"]:
        # Its replica died: a client may hold events the stored text never got (a local
        # listener is sent an event before it reaches Redis). Its end comes after them.
        end = max(end, after + 1)
    yield Event.of(end, *terminal_event(message))


def _spans(message: Message) -> list[tuple[int, int, bool]]:
    if message.spans is None:  # stored before spans existed: the whole text as one event
        tokens = (message.usage or {}).get("completion_tokens", 0)
        return [(len(message.content), tokens, False)] if message.content else []
    spans = []
    for item in filter(None, message.spans.split(",")):
        thought = item.startswith("r")
        chars, _, count = item.removeprefix("r").partition(":")
        spans.append((int(chars), int(count or 1), thought))
    return spans


def is_final(message: Message) -> bool:
    return message.status in FINAL_STATUSES
