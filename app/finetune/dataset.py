"""A fine-tuning dataset: JSONL, one chat example a line, `{"messages": [...]}` as OpenAI's
chat fine-tuning format. Pure functions: the upload validates every line with `examples`, and
the training worker reads the same examples back with it.

An example is an optional system message, then user and assistant turns alternating, ending
with the assistant's (what the model learns to answer). A bad line is an `InvalidRequest`
naming its line number (1-based) and what is wrong, so the person can fix the file."""

from __future__ import annotations

from typing import Any

import orjson

from app.errors import InvalidRequest

Message = dict[str, str]
ROLES = ("system", "user", "assistant")


def examples(raw: bytes) -> list[list[Message]]:
    """Every example of a JSONL file, checked; blank lines are skipped. InvalidRequest
    (param `file`) for an empty file or the first bad line."""
    found: list[list[Message]] = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if line.strip():
            found.append(example(line, number))
    if not found:
        raise InvalidRequest("the file has no examples: expected JSONL, one "
                             '{"messages": [...]} object a line', param="file")
    return found


def example(line: bytes, number: int) -> list[Message]:
    """One line's messages, or InvalidRequest naming line `number`."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise _bad(number, f"is not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise _bad(number, 'must be a JSON object with "messages"')
    if "messages" not in value:
        raise _bad(number, 'has no "messages"')
    messages = value["messages"]
    if not isinstance(messages, list) or not messages:
        raise _bad(number, '"messages" must be a non-empty list')
    _check_order([_role(m, number, i) for i, m in enumerate(messages)], number)
    return [_message(m, number, i) for i, m in enumerate(messages)]


def _role(message: Any, number: int, index: int) -> str:
    if not isinstance(message, dict):
        raise _bad(number, f"messages[{index}] must be an object with role and content")
    role = message.get("role")
    if role not in ROLES:
        raise _bad(number, f"messages[{index}].role must be one of {', '.join(ROLES)}, "
                   f"got {role!r}")
    return str(role)


def _check_order(roles: list[str], number: int) -> None:
    """An optional system message, then user/assistant alternating, the assistant last."""
    start = 1 if roles[0] == "system" else 0
    for index in range(start, len(roles)):
        expected = "user" if (index - start) % 2 == 0 else "assistant"
        if roles[index] != expected:
            raise _bad(number, f"roles are in the wrong order: messages[{index}] is "
                       f"{roles[index]!r} where {expected!r} was expected (an optional system "
                       "message, then user and assistant alternating)")
    if roles[-1] != "assistant":
        raise _bad(number, "the last message must be the assistant's (what the model learns)")


def _message(message: dict[str, Any], number: int, index: int) -> Message:
    content = message.get("content")
    if not isinstance(content, str):
        raise _bad(number, f"messages[{index}].content must be a string")
    if not content.strip():
        raise _bad(number, f"messages[{index}].content is empty")
    extra = set(message) - {"role", "content", "weight", "name"}
    if extra:
        raise _bad(number, f"messages[{index}] has unknown keys: {', '.join(sorted(extra))}")
    return {"role": message["role"], "content": content}


def _bad(number: int, what: str) -> InvalidRequest:
    return InvalidRequest(f"line {number}: {what}", param="file", code="invalid_file")
