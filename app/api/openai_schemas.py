"""OpenAI request bodies, declared. Every parameter OpenAI or vLLM documents is either honoured
or refused with a 400 that names it: never silently ignored. A parameter this server does not
implement passes only at its neutral value (e.g. `repetition_penalty: 1.0`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainValidator, ValidationInfo, field_validator, model_validator

from app.engine.base import ChatTurn, GenerationParams
from app.params import SamplingFields
from app.validation import MessageText, StrictModel, within_message_limit

MAX_TOP_LOGPROBS = 20
MAX_COMPLETION_LOGPROBS = 5
CHAT_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
# Parameters clients send that mean nothing different here when left at these values.
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "repetition_penalty": (1.0,), "logit_bias": (None, {}), "parallel_tool_calls": (None,),
    "tool_choice": ("none",), "tools": ([],), "store": (False,), "suffix": (None,),
    "best_of": (1,), "service_tier": (None,), "metadata": (None,), "echo": (False,),
    "response_format": (None, {"type": "text"}),
}
PositiveInt = Annotated[int, Field(ge=1)]


class TextPart(StrictModel):
    type: Literal["text"]
    text: MessageText


class ChatMessage(StrictModel):
    role: Literal["system", "developer", "user", "assistant"]
    # A string, or a list of text parts (joined by newlines).
    content: Annotated[list[TextPart], BeforeValidator(
        lambda v: [{"type": "text", "text": v}] if isinstance(v, str) else v)]
    name: str | None = None

    def turn(self) -> ChatTurn:
        return ChatTurn(CHAT_ROLES[self.role], "\n".join(part.text for part in self.content))


class StreamOptions(StrictModel):
    include_usage: bool = False


ModelName = Annotated[str, Field(min_length=1)]


class OpenAIRequest(SamplingFields):
    max_tokens: PositiveInt | None = None
    n: PositiveInt = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None

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

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_tokens

    def generation_params(self) -> GenerationParams:
        sampling = self.model_dump(include=set(SamplingFields.model_fields), exclude_none=True)
        if "stop" in sampling:
            sampling["stop"] = tuple(sampling["stop"])
        # OpenAI's default temperature is 1.0, not the sessions' 0.7.
        return GenerationParams(**{"temperature": 1.0, **sampling, "n": self.n,
                                   "logprobs": self.logprob_count})

    @property
    def logprob_count(self) -> int | None:
        return None


class ChatCompletionRequest(OpenAIRequest):
    model: ModelName
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: PositiveInt | None = None
    logprobs: bool = False
    top_logprobs: Annotated[int, Field(ge=0, le=MAX_TOP_LOGPROBS)] | None = None

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

    def turns(self) -> list[ChatTurn]:
        return [message.turn() for message in self.messages]


def _prompt(value: Any, info: ValidationInfo) -> str | tuple[int, ...]:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        value = value[0]  # one prompt in a list
    if isinstance(value, list) and value and all(
            isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value):
        return tuple(value)
    if isinstance(value, str) and value:
        return within_message_limit(value, info)
    raise ValueError("must be a non-empty string (or one list of token ids); send one prompt "
                     "per request")


class CompletionRequest(OpenAIRequest):
    model: ModelName | None = None  # or in the path: /v1/engines/{model}/completions
    prompt: Annotated[str | tuple[int, ...], PlainValidator(_prompt)]
    logprobs: Annotated[int, Field(ge=0, le=MAX_COMPLETION_LOGPROBS)] | None = None

    @property
    def logprob_count(self) -> int | None:
        return self.logprobs
