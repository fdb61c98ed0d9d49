"""A conversation's items (OpenAI's shapes) and a session's messages, one onto the other, in order.

A message item, a function call, a function call's output and a reasoning item are each one
message. A reply written through the sessions API holds its reasoning and its text in one
message: it reads as two items, the reasoning (`rs_` and the message id's hex) and the message.
Items come in validated (app/api/conversations/schemas.py), as dicts."""

from __future__ import annotations

import time
from typing import Any

from app.ids import new_id
from app.sessions.models import Message, Status

Item = dict[str, Any]
Messages = list[dict[str, Any]]  # chat messages, as a chat completion takes them

_ITEM_STATUS = {"queued": "in_progress", "streaming": "in_progress", "done": "completed",
                "cancelled": "incomplete", "error": "incomplete"}
_MESSAGE_STATUS: dict[str | None, Status] = {"incomplete": "cancelled", "in_progress": "done"}


def _text_of(content: str | list[dict[str, Any]]) -> str:
    """A message item's text: a string, or its text parts joined by newlines (as a response's
    input is read)."""
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content)


def message_of(item: Item, *, keep_id: bool = False) -> Message:
    """The message that stores `item`; a new id unless `keep_id` (a response's output items,
    whose ids were just minted), so that an item sent back again is a new item."""
    kind = item.get("type", "message")
    prefix = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_",
              "reasoning": "rs_"}[kind]
    status = _MESSAGE_STATUS.get(item.get("status"), "done")
    message = Message(id=item["id"] if keep_id and item.get("id") else new_id(prefix),
                      role="assistant", content="", status=status, created=time.time())
    if kind == "message":
        message.role = item["role"]
        message.content = _text_of(item["content"])
    elif kind == "function_call":
        message.tool_calls = [{"id": item["call_id"], "type": "function", "function": {
            "name": item["name"], "arguments": item["arguments"]}}]
    elif kind == "function_call_output":
        message.role, message.tool_call_id = "tool", item["call_id"]
        message.content = item["output"]
    else:
        parts = [*(item.get("content") or []), *(item.get("summary") or [])]
        message.reasoning = "\n".join(part["text"] for part in parts)
    return message


def items_of(message: Message) -> list[Item]:
    """The items a message reads as, in order."""
    status = _ITEM_STATUS[message.status]
    if message.tool_calls:
        return [{"id": message.id if i == 0 else f"{message.id}_{i}", "type": "function_call",
                 "status": status, "call_id": call["id"], "name": call["function"]["name"],
                 "arguments": call["function"]["arguments"]}
                for i, call in enumerate(message.tool_calls)]
    if message.role == "tool":
        return [{"id": message.id, "type": "function_call_output", "status": status,
                 "call_id": message.tool_call_id, "output": message.content}]
    items: list[Item] = []
    if message.reasoning is not None:
        alone = message.role == "assistant" and not message.content and message.status == "done"
        items.append({"id": message.id if alone else reasoning_id(message.id),
                      "type": "reasoning", "status": status, "summary": [],
                      "content": [{"type": "reasoning_text", "text": message.reasoning}]})
        if alone:
            return items
    part = {"type": "output_text", "text": message.content, "annotations": [], "logprobs": []} \
        if message.role == "assistant" else {"type": "input_text", "text": message.content}
    return [*items, {"id": message.id, "type": "message", "status": status,
                     "role": message.role, "content": [part]}]


def reasoning_id(message_id: str) -> str:
    """The id of the reasoning item of a reply that holds its text too."""
    return "rs_" + message_id.split("_", 1)[-1]


def all_items(messages: list[Message]) -> list[Item]:
    return [item for message in messages for item in items_of(message)]


def holder(messages: list[Message], item_id: str) -> Message | None:
    """The message that `item_id` reads from."""
    for message in messages:
        if any(item["id"] == item_id for item in items_of(message)):
            return message
    return None


def chat_messages(system: str | None, messages: list[Message]) -> Messages:
    """The conversation as chat messages, for a response that goes on from it: its system
    prompt first; function calls on the assistant message just before, as the chat API has
    them; reasoning and unfinished replies left out, as in a session's own prompts."""
    chat: Messages = [{"role": "system", "content": system}] if system else []
    for message in messages:
        if message.status in ("queued", "streaming"):
            continue
        if message.tool_calls:
            last = chat[-1] if chat else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).extend(message.tool_calls)
            else:
                chat.append({"role": "assistant", "content": message.content or None,
                             "tool_calls": list(message.tool_calls)})
        elif message.role == "tool":
            chat.append({"role": "tool", "tool_call_id": message.tool_call_id,
                         "content": message.content})
        elif message.content:
            role = "system" if message.role == "developer" else message.role
            chat.append({"role": role, "content": message.content})
    return chat
