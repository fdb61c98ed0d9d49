"""vLLM's tool-call parsers (its `--tool-call-parser` names), one new instance per reply: a
parser keeps the state of the reply it streams."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.errors import ConfigError


def new_parser(name: str, tokenizer: Any, tools: Sequence[dict[str, Any]] | None) -> Any:
    """vLLM's `ToolParser` `name` over `tokenizer`, or ConfigError: an unknown name, or a
    parser this tokenizer cannot take (e.g. one whose tool-call tokens it lacks)."""
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionToolsParam
    from vllm.tool_parsers import ToolParserManager

    try:
        parser_class = ToolParserManager.get_tool_parser(name)
    except KeyError:
        known = ", ".join(sorted(ToolParserManager.list_registered()))
        raise ConfigError(f"STREAMCHAT_TOOL_CALL_PARSER: unknown parser {name!r}; vLLM's are "
                          f"{known}") from None
    vllm_tools = [ChatCompletionToolsParam.model_validate(tool) for tool in tools or []]
    try:
        return parser_class(tokenizer, vllm_tools or None)  # type: ignore[arg-type]
    except Exception as exc:  # parsers raise what they like when the tokenizer lacks a token
        raise ConfigError(f"STREAMCHAT_TOOL_CALL_PARSER: {name!r} does not fit this model's "
                          f"tokenizer: {exc}") from None
