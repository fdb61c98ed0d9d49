"""OpenAI request bodies, declared. Every parameter OpenAI or vLLM documents is either honoured
or refused with a 400 that names it: never silently ignored. A parameter this server does not
implement passes only at its neutral value (e.g. `repetition_penalty: 1.0`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from pydantic import Field, PlainValidator, ValidationInfo, field_validator, model_validator

from app.api.openai.messages import ChatMessage
from app.api.openai.structured import ResponseFormat, StructuredOutputs, constraint
from app.api.openai.tools import ToolFields
from app.engine.base import ChatTurn, GenerationParams
from app.errors import InvalidRequest
from app.params import SamplingFields, engine_fields
from app.validation import StrictModel, within_message_limit

MAX_TOP_LOGPROBS = 20
MAX_COMPLETION_LOGPROBS = 5
# Parameters clients send that mean nothing different here when left at these values.
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "parallel_tool_calls": (None,), "tool_choice": ("none",), "tools": ([],), "store": (False,),
    "suffix": (None,), "best_of": (1,), "service_tier": (None,), "metadata": (None,),
}
PositiveInt = Annotated[int, Field(ge=1)]
# vLLM's bounds: its int64 request fields, its default `max_logprobs`.
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
MAX_PROMPT_LOGPROBS = 20


class StreamOptions(StrictModel):
    include_usage: bool = False
    # vLLM's: usage on every chunk too (with include_usage).
    continuous_usage_stats: bool = False

    @model_validator(mode="after")
    def _continuous_needs_usage(self) -> StreamOptions:
        if self.continuous_usage_stats and not self.include_usage:
            raise ValueError("'continuous_usage_stats' needs 'include_usage': true")
        return self


ModelName = Annotated[str, Field(min_length=1)]


class OpenAIRequest(SamplingFields):
    max_tokens: PositiveInt | None = None
    n: PositiveInt = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # vLLM's extensions. `priority` orders a user's own waiting requests (lower first); it
    # never moves them ahead of another user's (app/admission/).
    priority: Int64 = 0
    prompt_logprobs: Annotated[int, Field(ge=0, le=MAX_PROMPT_LOGPROBS)] | None = None
    response_format: ResponseFormat | None = None
    structured_outputs: StructuredOutputs | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_neutral(cls, body: Any) -> Any:
        if not isinstance(body, dict):
            return body
        return {key: value for key, value in body.items()
                if key in cls.model_fields or value not in NEUTRAL.get(key, ())}

    @field_validator("n")
    @classmethod
    def _n_within_limit(cls, n: int, info: ValidationInfo) -> int:
        limit = (info.context or {}).get("max_n")
        if limit is not None and n > limit:
            raise ValueError(f"must be at most {limit} on this server")
        return n

    @field_validator("stream_options")
    @classmethod
    def _options_need_stream(cls, options: StreamOptions | None,
                             info: ValidationInfo) -> StreamOptions | None:
        if options is not None and not info.data.get("stream"):
            raise ValueError("only allowed with stream: true")
        return options

    @field_validator("prompt_logprobs")
    @classmethod
    def _prompt_logprobs_not_streamed(cls, count: int | None, info: ValidationInfo) -> int | None:
        if count is not None and info.data.get("stream"):
            raise ValueError("not available with stream: true")  # as vLLM's server
        return count

    @field_validator("structured_outputs")
    @classmethod
    def _one_constraint(cls, structured: StructuredOutputs | None,
                        info: ValidationInfo) -> StructuredOutputs | None:
        rf = info.data.get("response_format")
        if structured is not None and rf is not None and rf.type != "text":
            raise ValueError("set either 'response_format' or 'structured_outputs', not both")
        return structured

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    @property
    def continuous_usage(self) -> bool:
        return self.include_usage and self.stream_options is not None \
            and self.stream_options.continuous_usage_stats

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_tokens

    def generation_params(self) -> GenerationParams:
        sampling = self.model_dump(include=set(SamplingFields.model_fields), exclude_none=True)
        # OpenAI's default temperature is 1.0, not the sessions' 0.7.
        return GenerationParams(**{"temperature": 1.0, **engine_fields(sampling), "n": self.n,
                                   "logprobs": self.logprob_count,
                                   "prompt_logprobs": self.prompt_logprobs,
                                   "structured": constraint(self.response_format,
                                                            self.structured_outputs)})

    @property
    def logprob_count(self) -> int | None:
        return None


class ChatCompletionRequest(ToolFields, OpenAIRequest):
    model: ModelName
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: PositiveInt | None = None
    logprobs: bool = False
    top_logprobs: Annotated[int, Field(ge=0, le=MAX_TOP_LOGPROBS)] | None = None
    # vLLM's: render the chat for a new assistant turn (the default), or leave the last
    # (assistant) message open for the reply to continue.
    add_generation_prompt: bool = True
    continue_final_message: bool = False

    @field_validator("continue_final_message")
    @classmethod
    def _continue_an_assistant_message(cls, go_on: bool, info: ValidationInfo) -> bool:
        if go_on and info.data.get("add_generation_prompt", True):
            raise ValueError("needs 'add_generation_prompt': false (they exclude each other)")
        messages = info.data.get("messages") or []
        if go_on and messages and messages[-1].role != "assistant":
            raise ValueError("needs the last message to be the assistant's")
        return go_on

    @model_validator(mode="before")
    @classmethod
    def _null_logprobs(cls, body: Any) -> Any:
        if isinstance(body, dict) and body.get("logprobs", False) is None:
            return {**body, "logprobs": False}
        return body

    @field_validator("top_logprobs")
    @classmethod
    def _top_needs_logprobs(cls, top: int | None, info: ValidationInfo) -> int | None:
        if top is not None and not info.data.get("logprobs"):
            raise ValueError("needs 'logprobs': true")
        return top

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def logprob_count(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None

    def generation_params(self) -> GenerationParams:
        params, forced = super().generation_params(), self.forced_calls()
        if forced is not None and params.structured is not None:
            raise InvalidRequest("'tool_choice': 'required' or a named function constrains the "
                                 "reply itself; not with 'response_format' or "
                                 "'structured_outputs'", param="tool_choice")
        return params if forced is None else replace(params, structured=forced)

    def turns(self) -> list[ChatTurn]:
        return [message.turn() for message in self.messages]


Prompt = str | tuple[int, ...]


def _one_prompt(value: Any, info: ValidationInfo) -> Prompt:
    if isinstance(value, list) and value and all(
            isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value):
        return tuple(value)
    if isinstance(value, str) and value:
        return within_message_limit(value, info)
    raise ValueError("must be a non-empty string or a non-empty list of token ids")


def _prompts(value: Any, info: ValidationInfo) -> tuple[Prompt, ...]:
    """A prompt (a string, a list of token ids) or a list of them; always a tuple of them."""
    if isinstance(value, list) and value and all(isinstance(p, (str, list)) for p in value):
        prompts = tuple(_one_prompt(p, info) for p in value)
    else:
        prompts = (_one_prompt(value, info),)
    # Each prompt gets n choices: max_n bounds a request's choices, however they come.
    limit, n = (info.context or {}).get("max_n"), info.data.get("n", 1)
    if limit is not None and len(prompts) * n > limit:
        raise ValueError(f"{len(prompts)} prompts with n={n} make {len(prompts) * n} choices; "
                         f"at most {limit} on this server")
    return prompts


class CompletionRequest(OpenAIRequest):
    model: ModelName | None = None  # or in the path: /v1/engines/{model}/completions
    prompt: Annotated[tuple[Prompt, ...], PlainValidator(_prompts)]
    logprobs: Annotated[int, Field(ge=0, le=MAX_COMPLETION_LOGPROBS)] | None = None
    echo: bool = False  # each choice's text starts with its prompt

    @field_validator("echo")
    @classmethod
    def _echo_without_logprobs(cls, echo: bool, info: ValidationInfo) -> bool:
        if echo and info.data.get("logprobs") is not None:
            raise ValueError("is not supported with 'logprobs' here")
        return echo

    @property
    def logprob_count(self) -> int | None:
        return self.logprobs
