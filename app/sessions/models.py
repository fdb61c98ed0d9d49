"""A session is a server-side conversation; a message is one turn of it."""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Role = Literal["user", "assistant"]
Status = Literal["queued", "streaming", "done", "cancelled", "error"]
FINAL_STATUSES: frozenset[str] = frozenset({"done", "cancelled", "error"})


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


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

    @classmethod
    def new(cls, role: Role, content: str, status: Status, model: str | None = None) -> Message:
        return cls(id=new_id("msg"), role=role, content=content, status=status, created=time.time(),
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


@dataclass(slots=True)
class Session:
    id: str
    created: float
    title: str | None = None
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    owner: str | None = None
    messages: list[Message] = field(default_factory=list)

    @classmethod
    def new(
        cls, *, system: str | None, params: dict[str, Any], title: str | None, owner: str | None
    ) -> Session:
        return cls(id=new_id("ses"), created=time.time(), title=title, system=system,
                   params=params, owner=owner)

    def find(self, message_id: str) -> Message | None:
        for message in reversed(self.messages):
            if message.id == message_id:
                return message
        return None

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "created": self.created, "title": self.title,
                "messages": len(self.messages)}

    def meta(self) -> dict[str, Any]:
        """The session without its messages, as stored."""
        return {"id": self.id, "created": self.created, "title": self.title, "system": self.system,
                "params": self.params, "owner": self.owner}

    def public(self) -> dict[str, Any]:
        """What clients see (docs/API.md)."""
        return {"id": self.id, "created": self.created, "title": self.title, "system": self.system,
                "params": self.params, "messages": [m.public() for m in self.messages]}
