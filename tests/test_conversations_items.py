"""A conversation's items onto a session's messages and back (app/conversations/items.py), the
chat messages a response in it goes on from, and session records of the previous version."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from app.conversations.items import all_items, chat_messages, holder, message_of, reasoning_id
from app.history import turn_of
from app.sessions.models import Message, Session

CALL: dict[str, Any] = {"type": "function_call", "call_id": "c1", "name": "f",
                        "arguments": "{}"}


def test_each_kind_of_item_reads_back_in_its_shape() -> None:
    sent = [{"role": "developer", "content": [{"type": "input_text", "text": "a"},
                                              {"type": "input_text", "text": "b"}]},
            {"type": "message", "role": "user", "content": "hi"},
            {"type": "reasoning", "summary": [], "content": [
                {"type": "reasoning_text", "text": "hmm"}]},
            CALL, {"type": "function_call_output", "call_id": "c1", "output": "42"},
            {"role": "assistant", "content": "It is 42.", "id": "msg_theirs"}]
    messages = [message_of(item) for item in sent]
    items = all_items(messages)
    assert [i["type"] for i in items] == ["message", "message", "reasoning", "function_call",
                                          "function_call_output", "message"]
    assert items[0]["content"] == [{"type": "input_text", "text": "a\nb"}]
    assert items[2]["content"] == [{"type": "reasoning_text", "text": "hmm"}]
    assert {k: items[3][k] for k in ("call_id", "name", "arguments")} == \
        {"call_id": "c1", "name": "f", "arguments": "{}"}
    assert items[4]["output"] == "42" and items[4]["call_id"] == "c1"
    assert items[5]["content"][0]["type"] == "output_text"
    assert items[5]["id"] != "msg_theirs"  # an item sent again is a new item
    assert [i["id"][:3] for i in items] == ["msg", "msg", "rs_", "fc_", "fco", "msg"]
    assert all(i["status"] == "completed" for i in items)


def test_a_reply_with_reasoning_reads_as_two_items() -> None:
    reply = Message.new("assistant", "Hello", "done")
    reply.reasoning = "thinking"
    reasoning, text = all_items([reply])
    assert reasoning["id"] == reasoning_id(reply.id) and reasoning["type"] == "reasoning"
    assert text["id"] == reply.id and text["content"][0]["text"] == "Hello"
    assert holder([reply], reasoning["id"]) is reply


def test_chat_messages_put_calls_on_the_assistant_turn_and_leave_reasoning_out() -> None:
    said = Message.new("assistant", "Let me look.", "done")
    said.reasoning = "why"
    messages = [message_of({"role": "developer", "content": "d"}),
                message_of({"role": "user", "content": "q"}), said, message_of(CALL),
                message_of({"type": "function_call_output", "call_id": "c1", "output": "42"}),
                Message.new("assistant", "", "streaming")]
    assert chat_messages("sys", messages) == [
        {"role": "system", "content": "sys"}, {"role": "system", "content": "d"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"}]
    # A session's own prompt shows the same turns (app/history.py).
    assert turn_of(messages[3]).extra == {"tool_calls": messages[3].tool_calls}
    assert turn_of(messages[0]).role == "system"


def test_records_of_the_previous_version_still_load() -> None:
    old_meta = {"id": "ses_1", "created": 1.0, "title": None, "system": None, "params": {},
                "owner": None, "model": None}
    old_message = {"id": "msg_1", "role": "user", "content": "hi", "status": "done",
                   "created": 1.0}
    session = Session.from_meta(old_meta, [Message.from_dict(old_message)])
    assert session.metadata == {} and session.messages[0].tool_calls is None
    assert all_items(session.messages)[0]["content"][0]["text"] == "hi"


def test_the_conversations_core_does_not_import_starlette() -> None:
    code = ("import sys, app.conversations.service; "
            "assert 'starlette' not in sys.modules, 'app.conversations imports starlette'")
    subprocess.run([sys.executable, "-c", code], check=True)
