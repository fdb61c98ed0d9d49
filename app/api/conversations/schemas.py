"""Request bodies of the Conversations API, and its conversation object, declared (docs/API.md).
An item is what a response's input takes (app/api/responses/schemas.py), or a reasoning item
that a response gave back."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, PlainValidator

from app.api.responses.schemas import FunctionCallItem, FunctionCallOutputItem, MessageItem
from app.validation import MessageText, StrictModel, by_type

MAX_ITEMS = 20  # OpenAI's: "You may add up to 20 items at a time"


class ReasoningText(StrictModel):
    type: Literal["reasoning_text", "summary_text"]
    text: MessageText


class ReasoningItem(StrictModel):
    type: Literal["reasoning"]
    summary: list[ReasoningText] = []
    content: list[ReasoningText] | None = None
    id: str | None = None
    status: str | None = None
    encrypted_content: None = None


Item = Annotated[MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem,
                 PlainValidator(by_type({
                     "message": MessageItem, "function_call": FunctionCallItem,
                     "function_call_output": FunctionCallOutputItem,
                     "reasoning": ReasoningItem}, default="message"))]
Items = Annotated[list[Item], Field(max_length=MAX_ITEMS)]
Metadata = Annotated[dict[Annotated[str, Field(max_length=64)],
                          Annotated[str, Field(max_length=512)]], Field(max_length=16)]


class Conversation(BaseModel):
    """A conversation as the routes answer it (built through this model)."""

    id: str  # the session's id
    object: Literal["conversation"] = "conversation"
    created_at: int
    metadata: dict[str, str]


class ConversationDeleted(BaseModel):
    id: str
    object: Literal["conversation.deleted"] = "conversation.deleted"
    deleted: Literal[True] = True


def dumped(items: list[Any]) -> list[dict[str, Any]]:
    """Validated items as the core takes them (app/conversations/items.py)."""
    return [item.model_dump(exclude_none=True) for item in items]


class NewConversation(StrictModel):
    items: Items | None = None
    metadata: Metadata | None = None


class ConversationPatch(StrictModel):
    metadata: Metadata | None  # required, as the SDK sends it; null clears


class NewItems(StrictModel):
    items: Annotated[Items, Field(min_length=1)]
