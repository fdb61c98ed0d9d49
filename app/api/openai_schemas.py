"""OpenAI request bodies -> validated requests. Every parameter OpenAI or vLLM documents is
either honoured or refused with a 400 that names it: never silently ignored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from app.engine.base import ChatTurn, GenerationParams
from app.errors import InvalidRequest, NotFound
from app.params import SESSION_PARAMS

CHAT_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_TOP_LOGPROBS = 20


@dataclass(frozen=True)
class OpenAIRequest:
    model: str
    params: GenerationParams
    max_tokens: int | None
    stream: bool
    include_usage: bool
    logprobs: bool
    chat: tuple[ChatTurn, ...] = ()
    prompt: str | tuple[int, ...] = ""


def _check(key: str, value: Any, test: Callable[[Any], bool], expected: str) -> Any:
    if not test(value):
        raise InvalidRequest(f"'{key}' must be {expected}", param=key)
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# Parameters clients send that mean nothing different here when left at their neutral value.
NEUTRAL = {"repetition_penalty": 1.0, "logit_bias": None, "parallel_tool_calls": None,
           "tool_choice": "none", "store": False, "suffix": None, "best_of": 1,
           "service_tier": None, "metadata": None, "response_format": None, "echo": False}
NEUTRAL_ALT = {"response_format": {"type": "text"}, "tools": [], "logit_bias": {}}

COMMON = {"model", "max_tokens", "temperature", "top_p", "top_k", "n", "stop", "seed",
          "presence_penalty", "frequency_penalty", "stream", "stream_options", "user",
          "ignore_eos", "logprobs"}
CHAT_FIELDS = COMMON | {"messages", "max_completion_tokens", "top_logprobs"}
COMPLETION_FIELDS = COMMON | {"prompt"}


def _refuse_unknown(body: dict[str, Any], allowed: set[str]) -> None:
    for key in sorted(set(body) - allowed):
        if key in NEUTRAL and body[key] == NEUTRAL[key]:
            continue
        if key in NEUTRAL_ALT and body[key] == NEUTRAL_ALT[key]:
            continue
        raise InvalidRequest(f"parameter {key!r} is not supported by this server", param=key,
                             code="unsupported_parameter")


def check_model(model: Any, served: str, aliases: tuple[str, ...]) -> str:
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a string", param="model")
    if model != served and model not in aliases:
        raise NotFound(f"The model '{model}' does not exist; this server serves '{served}'",
                       param="model", code="model_not_found")
    return model


def _sampling(body: dict[str, Any], max_n: int) -> tuple[dict[str, Any], int | None]:
    """The sampling fields shared by chat and completions, checked like session params."""
    checked: dict[str, Any] = {}
    for key in ("temperature", "top_p", "top_k", "stop", "seed", "presence_penalty",
                "frequency_penalty", "ignore_eos"):
        if body.get(key) is not None:
            checked[key] = SESSION_PARAMS[key](body[key])
    n = body.get("n")
    if n is not None:
        _check("n", n, _is_int, "an integer")
        if not 1 <= n <= max_n:
            raise InvalidRequest(f"'n' must be between 1 and {max_n}, got {n}", param="n")
        checked["n"] = n
    max_tokens = None
    for key in ("max_completion_tokens", "max_tokens"):
        if body.get(key) is not None:
            max_tokens = _check(key, body[key], lambda v: _is_int(v) and v >= 1,
                                "an integer >= 1")
            break
    return checked, max_tokens


def _stream_options(body: dict[str, Any]) -> tuple[bool, bool]:
    stream = bool(_check("stream", body.get("stream", False), lambda v: isinstance(v, bool),
                         "true or false"))
    options = body.get("stream_options")
    if options is None:
        return stream, False
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise InvalidRequest("'stream_options' takes only {\"include_usage\": bool}",
                             param="stream_options")
    if not stream:
        raise InvalidRequest("'stream_options' is only allowed with stream: true",
                             param="stream_options")
    include = options.get("include_usage", False)
    return stream, bool(_check("stream_options.include_usage", include,
                               lambda v: isinstance(v, bool), "true or false"))


def _user(body: dict[str, Any]) -> None:
    if body.get("user") is not None:
        _check("user", body["user"], lambda v: isinstance(v, str), "a string")


def _content(index: int, content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" \
                    or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise InvalidRequest(
                    f"messages[{index}].content: only text parts are supported, got {kind!r}",
                    param=f"messages[{index}].content")
            texts.append(part["text"])
        return "\n".join(texts)
    raise InvalidRequest(f"messages[{index}].content must be a string or a list of text parts",
                         param=f"messages[{index}].content")


def parse_messages(raw: Any) -> tuple[ChatTurn, ...]:
    if raw is None:
        raise InvalidRequest("'messages' is required", param="messages")
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("'messages' must be a non-empty list", param="messages")
    turns = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = message.get("role")
        if role not in CHAT_ROLES:
            raise InvalidRequest(
                f"messages[{i}].role {role!r} is not supported; use one of "
                f"{', '.join(CHAT_ROLES)}", param=f"messages[{i}].role")
        extra = sorted(set(message) - {"role", "content", "name"})
        if extra:
            raise InvalidRequest(f"messages[{i}]: field {extra[0]!r} is not supported",
                                 param=f"messages[{i}].{extra[0]}")
        turns.append(ChatTurn(CHAT_ROLES[role], _content(i, message.get("content"))))
    return tuple(turns)


def parse_chat(body: dict[str, Any], served: str, aliases: tuple[str, ...], max_n: int,
               defaults: GenerationParams) -> OpenAIRequest:
    _refuse_unknown(body, CHAT_FIELDS)
    model = check_model(body.get("model"), served, aliases)
    turns = parse_messages(body.get("messages"))
    checked, max_tokens = _sampling(body, max_n)
    logprobs = body.get("logprobs") or False
    _check("logprobs", logprobs, lambda v: isinstance(v, bool), "true or false")
    top = body.get("top_logprobs")
    if top is not None:
        _check("top_logprobs", top, lambda v: _is_int(v) and 0 <= v <= MAX_TOP_LOGPROBS,
               f"an integer from 0 to {MAX_TOP_LOGPROBS}")
        if not logprobs:
            raise InvalidRequest("'top_logprobs' needs 'logprobs': true", param="top_logprobs")
    if logprobs:
        checked["logprobs"] = top or 0
    _user(body)
    stream, include_usage = _stream_options(body)
    return OpenAIRequest(model=model, params=_params(defaults, checked), max_tokens=max_tokens,
                         stream=stream, include_usage=include_usage, logprobs=logprobs,
                         chat=turns)


def parse_completion(body: dict[str, Any], served: str, aliases: tuple[str, ...], max_n: int,
                     defaults: GenerationParams, model: str | None = None) -> OpenAIRequest:
    _refuse_unknown(body, COMPLETION_FIELDS)
    model = check_model(body.get("model", model), served, aliases)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, list) and prompt and all(_is_int(t) and t >= 0 for t in prompt):
        prompt = tuple(prompt)
    elif not isinstance(prompt, str) or not prompt:
        raise InvalidRequest("'prompt' must be a non-empty string (or one list of token ids); "
                             "send one prompt per request", param="prompt")
    checked, max_tokens = _sampling(body, max_n)
    logprobs = body.get("logprobs")
    if logprobs is not None:
        _check("logprobs", logprobs, lambda v: _is_int(v) and 0 <= v <= 5,
               "an integer from 0 to 5")
        checked["logprobs"] = logprobs
    _user(body)
    stream, include_usage = _stream_options(body)
    return OpenAIRequest(model=model, params=_params(defaults, checked), max_tokens=max_tokens,
                         stream=stream, include_usage=include_usage,
                         logprobs=logprobs is not None, prompt=prompt)


def _params(defaults: GenerationParams, checked: dict[str, Any]) -> GenerationParams:
    # OpenAI's default temperature is 1.0, not the chat page's 0.7.
    return replace(defaults, **{"temperature": 1.0, **checked})
