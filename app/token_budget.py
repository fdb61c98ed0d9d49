"""One rule for a reply's max_tokens against the model's context, on every path (sessions,
WebSocket, OpenAI chat and completions):

- max_tokens set by the client: at most `max_reply_tokens`, and the prompt plus max_tokens must
  fit the context, else a 400 `context_length_exceeded` (a session first drops its oldest turns
  to make room);
- not set: the reply gets what the context leaves, up to the default (`default_max_tokens`);
  a prompt that leaves no room at all is the same 400.
A session's history is trimmed to leave the reply `history_reserve` tokens, so that a long
conversation never squeezes its replies to a handful of tokens."""

from __future__ import annotations

from app.errors import ContextTooLong, InvalidRequest


def history_reserve(context: int, requested: int | None, default: int) -> int:
    """Room kept for the reply when trimming history: the requested max_tokens, else the
    default, but at most half the context (a small context must stay usable)."""
    if requested is not None:
        return requested
    return min(default, max(1, context // 2))


def reply_max_tokens(context: int, prompt_tokens: int, requested: int | None, default: int,
                     *, prompt_param: str, cap: int | None = None) -> int:
    """max_tokens for a reply to a prompt of `prompt_tokens`, or ContextTooLong; `cap` is the
    most a request may ask for (`max_reply_tokens`)."""
    if cap is not None:
        if requested is not None and requested > cap:
            raise InvalidRequest(f"'max_tokens' may be at most {cap} on this server, got "
                                 f"{requested}", param="max_tokens")
        default = min(default, cap)
    room = context - prompt_tokens
    if requested is None:
        if room < 1:
            raise too_long(context, prompt_tokens, None, param=prompt_param)
        return min(default, room)
    if requested > room:
        raise too_long(context, prompt_tokens, requested,
                       param="max_tokens" if room >= 1 else prompt_param)
    return requested


def too_long(context: int, prompt_tokens: int, requested: int | None, *, param: str) -> ContextTooLong:
    if requested is None:
        return ContextTooLong(
            f"This model's maximum context length is {context} tokens. However, your prompt is "
            f"{prompt_tokens} tokens, which leaves no room for a reply. Please shorten it.",
            param=param)
    return ContextTooLong(
        f"This model's maximum context length is {context} tokens. However, you requested "
        f"{prompt_tokens + requested} tokens ({prompt_tokens} in the prompt, {requested} for the "
        "reply). Please reduce the length of the prompt or max_tokens.", param=param)
