"""Tool calls in a chat completion request, declared: `tools`, `tool_choice`,
`parallel_tool_calls`, and the messages that carry calls (`assistant` with `tool_calls`) and
their results (`tool`).

`required` and a named function work with any model: the reply is constrained (structured
output) to the JSON schema vLLM's own `get_json_schema_from_tools` builds from the tools, and
that JSON is read back as calls (app/api/openai/tool_calls.py). `auto` needs a tool-call
parser (`STREAMCHAT_TOOL_CALL_PARSER`), as vLLM's server needs `--tool-call-parser`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, PlainValidator, ValidationError, ValidationInfo, field_validator

from app.api.openai.structured import JsonSchema, _a_schema
from app.api.openai.tool_calls import CallReader, Reader, ToolCalls
from app.engine.base import StructuredOutput
from app.validation import StrictModel

ToolName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


class FunctionDef(StrictModel):
    name: ToolName
    description: str | None = None
    parameters: JsonSchema | None = None
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _check_schema(cls, schema: JsonSchema | None) -> JsonSchema | None:
        return schema if schema is None else _a_schema(schema)


class Tool(StrictModel):
    type: Literal["function"]
    function: FunctionDef


class FunctionName(StrictModel):
    name: str


class NamedToolChoice(StrictModel):
    type: Literal["function"]
    function: FunctionName


def _tool_choice(value: Any) -> str | NamedToolChoice:
    # Validated by hand only to name `tool_choice` itself in the error, not a union branch.
    if value in ("none", "auto", "required"):
        return str(value)
    if isinstance(value, dict):
        try:
            return NamedToolChoice.model_validate(value)
        except ValidationError as exc:
            raise ValueError(f"a named function is {{'type': 'function', 'function': "
                             f"{{'name': ...}}}}: {exc.errors()[0]['msg']}") from None
    raise ValueError("must be 'none', 'auto', 'required' or "
                     "{'type': 'function', 'function': {'name': ...}}")


ToolChoice = Annotated[str | NamedToolChoice, PlainValidator(_tool_choice)]


class CalledFunction(StrictModel):
    name: str
    arguments: str  # JSON, as OpenAI sends it

    @field_validator("arguments")
    @classmethod
    def _json_object(cls, arguments: str) -> str:
        try:
            value = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            raise ValueError("must be a JSON object (as a string)") from None
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object (as a string)")
        return arguments


class MessageToolCall(StrictModel):
    id: str
    type: Literal["function"]
    function: CalledFunction

    def for_template(self) -> dict[str, Any]:
        # Templates index into the arguments, so they get a dict, as vLLM gives them.
        return {"id": self.id, "type": "function", "function": {
            "name": self.function.name, "arguments": orjson.loads(self.function.arguments)}}


class ToolFields(StrictModel):
    """The request's tool fields; `ChatCompletionRequest` inherits them."""

    tools: list[Tool] | None = None
    # Resolved when validated: absent is `auto` with a tool-call parser and tools, else `none`.
    tool_choice: ToolChoice | None = Field(default=None, validate_default=True)
    parallel_tool_calls: bool | None = None

    @field_validator("tools")
    @classmethod
    def _unique_names(cls, tools: list[Tool] | None) -> list[Tool] | None:
        names = [tool.function.name for tool in tools or []]
        if len(set(names)) != len(names):
            raise ValueError("tool names must be unique")
        return tools or None  # `tools: []` is no tools

    @field_validator("tool_choice")
    @classmethod
    def _choice_among_tools(cls, choice: ToolChoice | None,
                            info: ValidationInfo) -> ToolChoice | None:
        tools: list[Tool] | None = info.data.get("tools")
        parser = (info.context or {}).get("tool_call_parser")
        if choice is None:  # OpenAI's default is `auto`; vLLM's without a parser, plain text
            return "auto" if tools and parser else "none"
        if choice == "none":
            return choice
        if not tools:
            raise ValueError("needs 'tools'")
        if isinstance(choice, NamedToolChoice):
            if choice.function.name not in {tool.function.name for tool in tools}:
                raise ValueError(f"names '{choice.function.name}', which is not in 'tools'")
        elif choice == "auto" and not parser:
            raise ValueError("'auto' needs a tool-call parser: start the server with "
                             "STREAMCHAT_TOOL_CALL_PARSER (vLLM's --tool-call-parser), or "
                             "use 'required' or a named function")
        return choice

    def template_tools(self) -> list[dict[str, Any]] | None:
        """The tools as the chat template reads them (also with `tool_choice: none`)."""
        if not self.tools:
            return None
        return [tool.model_dump(exclude_none=True) for tool in self.tools]

    def forced_calls(self) -> StructuredOutput | None:
        """The JSON schema a `required` or named choice constrains the reply to (vLLM's)."""
        choice = self.tool_choice
        if choice in (None, "none", "auto") or not self.tools:
            return None
        from vllm.entrypoints.openai.chat_completion.protocol import (
            ChatCompletionNamedToolChoiceParam,
            ChatCompletionToolsParam,
        )
        from vllm.tool_parsers.utils import get_json_schema_from_tools

        tools: list[Any] = [ChatCompletionToolsParam.model_validate(tool)
                            for tool in self.template_tools() or []]
        vllm_choice = choice if isinstance(choice, str) else \
            ChatCompletionNamedToolChoiceParam.model_validate(choice.model_dump())
        schema = get_json_schema_from_tools(vllm_choice, tools, self.parallel_tool_calls)
        return StructuredOutput("tools", json=orjson.dumps(schema).decode())

    def tool_calls(self, parser: Callable[[], Reader]) -> ToolCalls | None:
        """How the reply is read as calls: forced (`required`, named), or by the tool-call
        `parser` (`auto`); None with `none`."""
        choice = self.tool_choice
        if choice in (None, "none") or not self.tools:
            return None
        if choice == "auto":
            return ToolCalls(parser)
        name = choice.function.name if isinstance(choice, NamedToolChoice) else None
        return ToolCalls(lambda: CallReader(name))
