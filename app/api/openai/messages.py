"""A chat completion's messages, declared: the roles OpenAI sends, text content (a string or
text parts), and the tool-call turns: an assistant message with `tool_calls` (its content may
be null) and a `tool` message with its result (`tool_call_id`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from app.api.openai.tools import MessageToolCall
from app.engine.base import ChatTurn
from app.validation import MessageText, StrictModel

CHAT_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
              "tool": "tool"}


class TextPart(StrictModel):
    type: Literal["text"]
    text: MessageText


class ChatMessage(StrictModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    tool_calls: Annotated[list[MessageToolCall], Field(min_length=1)] | None = None
    # A string, or a list of text parts (joined by newlines); null only beside `tool_calls`.
    content: Annotated[list[TextPart] | None, BeforeValidator(
        lambda v: [{"type": "text", "text": v}] if isinstance(v, str) else v)] = Field(
        default=None, validate_default=True)
    name: str | None = None
    # An assistant reply sent back as it came (vLLM accepts both names): to the template as
    # `reasoning_content`, which decides whether to render it (most drop earlier turns').
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_call_id: Annotated[str, Field(min_length=1)] | None = Field(default=None,
                                                                      validate_default=True)

    @field_validator("tool_calls")
    @classmethod
    def _calls_are_the_assistants(cls, calls: list[MessageToolCall] | None,
                                  info: ValidationInfo) -> list[MessageToolCall] | None:
        if calls is not None and info.data.get("role") != "assistant":
            raise ValueError("only an assistant message carries 'tool_calls'")
        return calls

    @field_validator("content")
    @classmethod
    def _content_or_calls(cls, content: list[TextPart] | None,
                          info: ValidationInfo) -> list[TextPart] | None:
        if content is None and info.data.get("tool_calls") is None:
            raise ValueError("is required (null only beside an assistant's 'tool_calls')")
        return content

    @field_validator("tool_call_id")
    @classmethod
    def _answers_a_call(cls, call_id: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("role") == "tool" and call_id is None:
            raise ValueError("a 'tool' message needs the id of the call it answers")
        if info.data.get("role") != "tool" and call_id is not None:
            raise ValueError("only a 'tool' message has one")
        return call_id

    def turn(self) -> ChatTurn:
        text = "\n".join(part.text for part in self.content or [])
        extra: dict[str, Any] = {}
        if self.tool_calls is not None:
            extra["tool_calls"] = [call.for_template() for call in self.tool_calls]
        if self.tool_call_id is not None:
            extra["tool_call_id"] = self.tool_call_id
        if (reasoning := self.reasoning_content or self.reasoning) and self.role == "assistant":
            extra["reasoning_content"] = reasoning
        return ChatTurn(CHAT_ROLES[self.role], text, extra)
