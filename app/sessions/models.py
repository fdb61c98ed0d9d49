"""A session is a server-side conversation; a message is one turn of it."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypedDict

from app.errors import InvalidRequest, MessageNotFound
from app.ids import new_id

# "system", "developer" and "tool" only in conversations' items (app/conversations/items.py).
Role = Literal["user", "assistant", "system", "developer", "tool"]
Status = Literal["queued", "streaming", "done", "cancelled", "error"]
FINAL_STATUSES: frozenset[str] = frozenset({"done", "cancelled", "error"})


@dataclass(slots=True)
class Message:
    id: str
    role: Role
    content: str
    status: Status
    created: float
    usage: dict[str, int] | None = None
    timings: dict[str, float] | None = None
    finish_reason: str | None = None
    # A reply's: the model that wrote it, and {"code", "message"} when it ended in error.
    model: str | None = None
    error: dict[str, str] | None = None
    # A finished reply's token events, "chars[:tokens]" each, so that its events can be rebuilt
    # exactly for a client resuming after its event log is gone (app/replies/transcript.py).
    spans: str | None = None
    # A reply's reasoning, with a reasoning parser: kept apart from `content`, which alone goes
    # into later prompts (app/history.py).
    reasoning: str | None = None
    # A conversation's function call (chat form: id, type, function) or its output's call id.
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    @classmethod
    def new(cls, role: Role, content: str, status: Status, model: str | None = None) -> Message:
        return cls(id=new_id("msg_"), role=role, content=content, status=status, created=time.time(),
                   model=model)

    def to_dict(self) -> dict[str, Any]:
        """Everything, as stored."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def public(self) -> dict[str, Any]:
        """What clients see (docs/API.md)."""
        data = self.to_dict()
        data.pop("spans", None)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        return cls(**data)


class SessionChanges(TypedDict, total=False):
    """What may change in a session's metadata (not its messages); a key absent is kept."""

    title: str | None
    system: str | None
    params: dict[str, Any]
    model: str | None  # None: the base model
    metadata: dict[str, str]


@dataclass(slots=True)
class Session:
    id: str
    created: float
    title: str | None = None
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    owner: str | None = None
    messages: list[Message] = field(default_factory=list)
    # The model its replies are written by, as the client named it; None: the base model.
    model: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)  # a conversation's (OpenAI's)

    @classmethod
    def new(
        cls, *, system: str | None, params: dict[str, Any], title: str | None, owner: str | None,
        model: str | None = None,
    ) -> Session:
        return cls(id=new_id("ses_"), created=time.time(), title=title, system=system,
                   params=params, owner=owner, model=model)

    @classmethod
    def from_meta(cls, meta: dict[str, Any], messages: list[Message]) -> Session:
        """The session from its stored `meta()` (older sessions lack newer keys)."""
        return cls(id=meta["id"], created=meta["created"], title=meta.get("title"),
                   system=meta.get("system"), params=meta.get("params") or {},
                   owner=meta.get("owner"), messages=messages, model=meta.get("model"),
                   metadata=meta.get("metadata") or {})

    def change(self, changes: SessionChanges) -> None:
        """Apply `changes` to its metadata."""
        for key, value in changes.items():
            setattr(self, key, value)

    def find(self, message_id: str) -> Message | None:
        for message in reversed(self.messages):
            if message.id == message_id:
                return message
        return None

    def turns_before(self, message_id: str) -> list[Message]:
        """The messages before the user turn `message_id`: what stays when a new turn takes
        its place (`replaces`)."""
        for i, message in enumerate(self.messages):
            if message.id == message_id:
                if message.role != "user":
                    raise InvalidRequest(f"message {message_id} is a reply; 'replaces' takes a "
                                         "user turn (to regenerate a reply, replace the turn "
                                         "before it)", param="replaces")
                return self.messages[:i]
        raise MessageNotFound(f"message {message_id} not found in session {self.id}",
                              param="replaces")

    def summary(self) -> dict[str, Any]:
        return summary_of(self.meta(), len(self.messages))

    def meta(self) -> dict[str, Any]:
        """The session without its messages, as stored."""
        return {"id": self.id, "created": self.created, "title": self.title, "system": self.system,
                "params": self.params, "owner": self.owner, "model": self.model,
                "metadata": self.metadata}

    def public(self) -> dict[str, Any]:
        """What clients see (docs/API.md)."""
        return {"id": self.id, "created": self.created, "title": self.title, "system": self.system,
                "params": self.params, "model": self.model,
                "messages": [m.public() for m in self.messages]}


def summary_of(meta: dict[str, Any], message_count: int) -> dict[str, Any]:
    """A session's entry in a list, from its stored `meta()`."""
    return {"id": meta["id"], "created": meta["created"], "title": meta.get("title"),
            "model": meta.get("model"), "messages": message_count}
