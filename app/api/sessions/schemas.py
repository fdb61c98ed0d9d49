"""Request bodies and WebSocket frames of the sessions API, declared (docs/API.md); bodies are
read by app/api/http/body.py."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError

from app.errors import InvalidRequest
from app.params import ReplyParams
from app.sessions.models import SessionChanges
from app.validation import MessageText, StrictModel, invalid_request

MAX_SYSTEM_CHARS = 100_000
MAX_TITLE_CHARS = 200


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


Content = Annotated[MessageText, AfterValidator(_not_blank)]


System = Annotated[str, Field(max_length=MAX_SYSTEM_CHARS)]
Title = Annotated[str, Field(max_length=MAX_TITLE_CHARS)]


class NewSession(StrictModel):
    system: System | None = None
    params: ReplyParams | None = None
    title: Title | None = None
    model: str | None = None  # a name GET /v1/models lists; unset: the base model


class SessionPatch(StrictModel):
    """PATCH /v1/sessions/{sid}: the keys present change, null clears (`model`: the base
    model); `params` replaces the session's params whole."""

    title: Title | None = None
    system: System | None = None
    params: ReplyParams | None = None
    model: str | None = None

    def changes(self) -> SessionChanges:
        changes = SessionChanges()
        fields = self.model_fields_set
        if "title" in fields:
            changes["title"] = self.title
        if "system" in fields:
            changes["system"] = self.system
        if "params" in fields:
            changes["params"] = self.params.stored() if self.params is not None else {}
        if "model" in fields:
            changes["model"] = self.model
        return changes


class NewMessage(StrictModel):
    content: Content
    params: ReplyParams | None = None
    replaces: str | None = None  # a user turn's id: the new turn takes its place


# -- WebSocket frames, client -> server ---------------------------------------------------

class MessageFrame(NewMessage):
    type: Literal["message"]


class CancelFrame(StrictModel):
    type: Literal["cancel"]
    message_id: str | None = None


class ResumeFrame(StrictModel):
    type: Literal["resume"]
    message_id: str
    after: Annotated[int, Field(ge=-1)] = -1  # the last seq received


class PingFrame(StrictModel):
    type: Literal["ping"]


ClientFrame = MessageFrame | CancelFrame | ResumeFrame | PingFrame
FRAME_TYPES: dict[str, type[StrictModel]] = {
    "message": MessageFrame, "cancel": CancelFrame, "resume": ResumeFrame, "ping": PingFrame}
_FRAMES: TypeAdapter[ClientFrame] = TypeAdapter(
    Annotated[ClientFrame, Field(discriminator="type")])


def parse_frame(raw: bytes, context: dict[str, Any] | None = None) -> ClientFrame:
    """A client frame, or InvalidRequest: `bad_frame` when it is not a JSON object with a
    string `type`, `unknown_type` for a type we do not know, else what is wrong in it."""
    try:
        return _FRAMES.validate_json(raw, context=context)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
    kind, loc = error["type"], tuple(error["loc"])
    if kind == "json_invalid":
        raise InvalidRequest("frame is not valid JSON", code="bad_frame")
    if kind == "union_tag_invalid" and isinstance(error["input"].get("type"), str):
        raise InvalidRequest(f"unknown frame type {error['input'].get('type')!r}; expected one "
                             f"of: {', '.join(FRAME_TYPES)}", code="unknown_type", param="type")
    if not loc or kind == "union_tag_not_found":
        raise InvalidRequest("frame must be a JSON object with a string 'type'", code="bad_frame")
    # loc starts with the frame's tag: the model that failed.
    raise invalid_request({**error, "loc": loc[1:]}, FRAME_TYPES.get(str(loc[0])))
