"""The Responses API's request (`POST /v1/responses`), declared, and how it becomes a chat
completion: input items become chat messages, function tools and `text.format` become the chat
request's `tools` and `response_format`. The chat request's own checks then run on the result
(`ChatCompletionRequest`), so a field means the same on both APIs; an error they find names
the Responses field (`text.format`, not `response_format`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainValidator, field_validator, model_validator

from app.api.openai.schemas import ChatCompletionRequest, ModelName, PositiveInt
from app.api.openai.structured import JsonSchemaFormat
from app.api.openai.tools import FunctionDef
from app.errors import InvalidRequest
from app.params import SamplingFields
from app.validation import MessageText, StrictModel, by_type, validate

Messages = list[dict[str, Any]]  # chat messages, as the chat request takes them


class TextPart(StrictModel):
    type: Literal["input_text", "output_text", "text"]
    text: MessageText
    # What the SDK sends back of an earlier response's output_text; not used.
    annotations: list[Any] | None = None
    logprobs: list[Any] | None = None


class MessageItem(StrictModel):
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    # A string, or text parts (joined by newlines).
    content: Annotated[list[TextPart], Field(min_length=1), BeforeValidator(
        lambda v: [{"type": "input_text", "text": v}] if isinstance(v, str) else v)]
    id: str | None = None
    status: str | None = None
    phase: str | None = None

    def text(self) -> str:
        return "\n".join(part.text for part in self.content)


class FunctionCallItem(StrictModel):
    type: Literal["function_call"]
    call_id: Annotated[str, Field(min_length=1)]
    name: Annotated[str, Field(min_length=1)]
    arguments: str
    id: str | None = None
    status: str | None = None


class FunctionCallOutputItem(StrictModel):
    type: Literal["function_call_output"]
    call_id: Annotated[str, Field(min_length=1)]
    output: MessageText
    id: str | None = None
    status: str | None = None


InputItem = Annotated[MessageItem | FunctionCallItem | FunctionCallOutputItem, PlainValidator(
    by_type({"message": MessageItem, "function_call": FunctionCallItem,
             "function_call_output": FunctionCallOutputItem}, default="message"))]


class FunctionTool(FunctionDef):
    type: Literal["function"]


class NamedFunction(StrictModel):
    type: Literal["function"]
    name: str


class TextFormatText(StrictModel):
    type: Literal["text"]


class TextFormatJsonObject(StrictModel):
    type: Literal["json_object"]


class TextFormatJsonSchema(JsonSchemaFormat):
    type: Literal["json_schema"]


TextFormat = TextFormatText | TextFormatJsonObject | TextFormatJsonSchema


class TextConfig(StrictModel):
    format: Annotated[TextFormat, PlainValidator(by_type({
        "text": TextFormatText, "json_object": TextFormatJsonObject,
        "json_schema": TextFormatJsonSchema}))] | None = None


class ResponsesRequest(SamplingFields):
    """OpenAI's fields, and the sampling fields chat completions take (vLLM's extensions
    among them: `top_k`, `min_p`, `ignore_eos`, ...), passed through."""

    model: ModelName
    # A string is one user message.
    input: Annotated[list[InputItem], Field(min_length=1), BeforeValidator(
        lambda v: [{"role": "user", "content": v}] if isinstance(v, str) else v)]
    instructions: MessageText | None = None
    previous_response_id: str | None = None
    # A conversation's id, or {"id": ...}: its items come before `input`, and this response's
    # are appended to it (app/api/responses/in_conversation.py).
    conversation: Annotated[str, Field(min_length=1), BeforeValidator(
        lambda v: v["id"] if isinstance(v, dict) and list(v) == ["id"] else v)] | None = None
    store: bool = True
    stream: bool = False
    background: bool = False
    tools: list[Annotated[FunctionTool, PlainValidator(by_type({"function": FunctionTool}))]] \
        | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedFunction | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    max_output_tokens: PositiveInt | None = None
    metadata: Annotated[dict[str, Annotated[str, Field(max_length=512)]],
                        Field(max_length=16)] | None = None
    user: str | None = None
    # Accepted at the only value served: no truncation of a long conversation, no reasoning
    # effort (no reasoning model is served by default), nothing extra to include.
    truncation: Literal["disabled"] | None = None
    reasoning: None = None
    include: Annotated[list[str], Field(max_length=0)] | None = None
    service_tier: Literal["auto", "default"] | None = None

    @field_validator("background")
    @classmethod
    def _background_is_stored(cls, background: bool, info: Any) -> bool:
        if background and not info.data.get("store", True):
            raise ValueError("needs 'store': true (a background response is fetched later)")
        return background

    @field_validator("conversation")
    @classmethod
    def _one_history(cls, conversation: str | None, info: Any) -> str | None:
        if conversation is not None and info.data.get("previous_response_id") is not None:
            raise ValueError("and 'previous_response_id' are mutually exclusive (as OpenAI): "
                             "give one")
        return conversation

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, body: Any) -> Any:
        # The SDK sends what a caller passed, None included, for fields with a default.
        if isinstance(body, dict):
            return {k: v for k, v in body.items()
                    if not (v is None and k in ("store", "stream", "background"))}
        return body

    def new_messages(self) -> Messages:
        """This request's input as chat messages (without `instructions`)."""
        messages: Messages = []
        for item in self.input:
            if isinstance(item, MessageItem):
                messages.append({"role": item.role, "content": item.text()})
            elif isinstance(item, FunctionCallItem):
                call = {"id": item.call_id, "type": "function",
                        "function": {"name": item.name, "arguments": item.arguments}}
                add_call(messages, call)
            else:
                messages.append({"role": "tool", "tool_call_id": item.call_id,
                                 "content": item.output})
        return messages

    def chat(self, history: Messages, context: dict[str, Any]) -> ChatCompletionRequest:
        """The chat completion this response runs: `history` (the chain's conversation so
        far), `instructions` first, then this input."""
        system = [{"role": "system", "content": self.instructions}] if self.instructions else []
        body: dict[str, Any] = {
            "model": self.model, "messages": [*system, *history, *self.new_messages()],
            "stream": True, "stream_options": {"include_usage": True}}
        body.update(self.model_dump(include=set(SamplingFields.model_fields), exclude_none=True))
        for name in ("user", "parallel_tool_calls"):
            if getattr(self, name) is not None:
                body[name] = getattr(self, name)
        if self.max_output_tokens is not None:
            body["max_completion_tokens"] = self.max_output_tokens
        if self.tools:
            body["tools"] = [{"type": "function", "function": tool.model_dump(
                exclude={"type"}, exclude_none=True, by_alias=True)} for tool in self.tools]
        if self.tool_choice is not None:
            body["tool_choice"] = self.tool_choice if isinstance(self.tool_choice, str) else \
                {"type": "function", "function": {"name": self.tool_choice.name}}
        if self.text is not None and self.text.format is not None:
            body["response_format"] = _response_format(self.text.format)
        try:
            return validate(ChatCompletionRequest, body, context)
        except InvalidRequest as exc:
            raise renamed(exc) from None


def add_call(messages: Messages, call: dict[str, Any]) -> None:
    """A function call as the chat API has it: on the assistant message just before, if any
    (its text and its calls are one turn), else on a new one."""
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _response_format(fmt: TextFormat) -> dict[str, Any]:
    if isinstance(fmt, TextFormatJsonSchema):
        return {"type": "json_schema", "json_schema": fmt.model_dump(
            exclude={"type"}, exclude_none=True, by_alias=True)}
    return {"type": fmt.type}


# The chat request's names for what this API calls otherwise (longest first).
_RENAMED = (("max_completion_tokens", "max_output_tokens"),
            ("response_format.json_schema.json_schema", "text.format"),
            ("response_format.json_schema", "text.format"),
            ("response_format", "text.format"), ("messages", "input"))


def renamed(exc: InvalidRequest) -> InvalidRequest:
    """The chat request's error, naming this API's field."""
    param = exc.param or ""
    for chat_name, name in _RENAMED:
        if param.startswith(chat_name):
            # A message's index differs from its input item's (instructions, the chain).
            new = "input" if chat_name == "messages" else name + param[len(chat_name):]
            message = exc.message.replace(f"'{param}'", f"'{new}'")
            return type(exc)(message, param=new, code=exc.code)
    if param.startswith("tools[") and ".function." in param:
        new = param.replace(".function.", ".")
        return type(exc)(exc.message.replace(param, new), param=new, code=exc.code)
    return exc

