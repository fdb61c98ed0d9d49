"""vLLM's reasoning parsers (its `--reasoning-parser` names), one new instance per reply: a
parser keeps the state of the reply it streams."""

from __future__ import annotations

import functools
from typing import Any

from app.errors import ConfigError


def new_parser(name: str, tokenizer: Any) -> Any:
    """vLLM's `ReasoningParser` `name` over `tokenizer`, or ConfigError: an unknown name, or a
    parser this tokenizer cannot take (e.g. one whose think tokens it lacks)."""
    from vllm.reasoning import ReasoningParserManager

    try:
        parser_class = ReasoningParserManager.get_reasoning_parser(name)
    except KeyError:
        known = ", ".join(ReasoningParserManager.list_registered())
        raise ConfigError(f"STREAMCHAT_REASONING_PARSER: unknown parser {name!r}; vLLM's are "
                          f"{known}") from None
    try:
        return parser_class(tokenizer)
    except Exception as exc:  # parsers raise what they like when the tokenizer lacks a token
        raise ConfigError(f"STREAMCHAT_REASONING_PARSER: {name!r} does not fit this model's "
                          f"tokenizer: {exc}") from None


@functools.cache
def vllm_request() -> Any:
    """What `extract_reasoning` is given of the request (vLLM's request type; the parsers read
    none of it): one, built once."""
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

    return ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": ""}]})
