"""Session replies with `STREAMCHAT_REASONING_PARSER` (scripted engine, vLLM's deepseek_r1):
the reasoning streamed as `reasoning` events and stored as the message's `reasoning`, never in a
later turn's prompt; replayed exactly, after any id, once the log is gone; over SSE and the
WebSocket as documented in docs/API.md."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.admission import Admission
from app.chat import ChatService
from app.lifecycle import Lifecycle
from app.main import create_app
from app.sessions.memory import MemorySessionStore
from app.settings import Settings
from app.streams.memory import MemoryReplyLogs
from tests.fakes import ScriptedEngine
from tests.sse_parse import check_grammar, parse_frames
from tests.test_chat import events_of, prompt_text
from tests.test_reasoning import steps

# A step that ends the reasoning and starts the answer: a reasoning event, then a token event.
SCRIPT = [*steps("<think>plan"), " it</think>The", " answer."]


@pytest.fixture
async def chat() -> AsyncIterator[ChatService]:
    engine = ScriptedEngine(tokens=SCRIPT)
    service = ChatService(engine, MemorySessionStore(), MemoryReplyLogs(), Lifecycle(engine),
                          Admission(max_active=8, max_queue=8, max_prefilling=4),
                          default_max_tokens=64, orphan_grace_s=0.1,
                          reasoning_parser="deepseek_r1")
    await service.start()
    yield service
    await service.shutdown()


async def test_reasoning_events_then_tokens_and_the_message_keeps_them_apart(
        chat: ChatService) -> None:
    sid = (await chat.create_session()).id
    live = await chat.post_message(sid, "Why?", transport="test")
    events = await events_of(live.log.follow())
    assert [(e.type, e.data.get("text"), e.data.get("n")) for e in events[1:-1]] == [
        ("reasoning", "p", 2), ("reasoning", "l", 1), ("reasoning", "a", 1),
        ("reasoning", "n", 1), ("reasoning", " it", 1), ("token", "The", 0),
        ("token", " answer.", 1)]
    assert [e.seq for e in events] == list(range(len(events)))
    assert events[-1].data["usage"]["completion_tokens"] == len(SCRIPT)
    stored = await chat.get_message(sid, live.message.id)
    assert (stored.reasoning, stored.content) == ("plan it", "The answer.")
    assert stored.public()["reasoning"] == "plan it"


async def test_the_reasoning_never_reaches_a_later_prompt(chat: ChatService) -> None:
    sid = (await chat.create_session(system="S")).id
    first = await chat.post_message(sid, "Why?", transport="test")
    await events_of(first.log.follow())
    second = await chat.post_message(sid, "And?", transport="test")
    await events_of(second.log.follow())
    prompt = prompt_text(chat.engine.prompts[-1])  # type: ignore[attr-defined]
    assert prompt == "SWhy?The answer.And?"
    assert "plan" not in prompt


async def test_resuming_after_the_log_is_gone_replays_reasoning_and_tokens_exactly(
        chat: ChatService) -> None:
    sid = (await chat.create_session()).id
    live = await chat.post_message(sid, "Why?", transport="test")
    events = await events_of(live.log.follow())
    await chat.logs.close()  # every log gone: rebuilt from the stored message
    for after in range(-1, len(events)):
        resumed = await events_of(await chat.follow_reply(sid, live.message.id, after=after))
        expected = events[after + 1:] or events[-1:]
        assert [(e.seq, e.type, e.data) for e in resumed] == \
            [(e.seq, e.type, e.data) for e in expected], after


def client_of(**settings: Any) -> TestClient:
    return TestClient(create_app(Settings(default_max_tokens=64, **settings),
                                 ScriptedEngine(tokens=SCRIPT)))


def test_over_sse_and_the_websocket() -> None:
    with client_of(reasoning_parser="deepseek_r1") as client:
        sid = client.post("/v1/sessions").json()["id"]
        response = client.post(f"/v1/sessions/{sid}/messages", json={"content": "Why?"},
                               headers={"Accept": "text/event-stream"})
        events = check_grammar(parse_frames(response.text))
        assert "".join(e["data"]["text"] for e in events if e["event"] == "reasoning") == \
            "plan it"
        assert "".join(e["data"]["text"] for e in events if e["event"] == "token") == \
            "The answer."
        with client.websocket_connect(f"/v1/sessions/{sid}/ws") as ws:
            ws.send_json({"type": "message", "content": "And?"})
            frames = []
            while not frames or frames[-1]["type"] not in ("done", "error"):
                frames.append(ws.receive_json())
        assert [f["type"] for f in frames].count("reasoning") == 5
        assert frames[1] == {"type": "reasoning", "message_id": frames[0]["message_id"],
                             "seq": 1, "text": "p", "n": 2}
        messages = client.get(f"/v1/sessions/{sid}").json()["messages"]
    assert [(m.get("reasoning"), m["content"]) for m in messages] == [
        (None, "Why?"), ("plan it", "The answer."), (None, "And?"), ("plan it", "The answer.")]


def test_without_a_parser_the_think_tags_stay_in_the_tokens() -> None:
    with client_of() as client:
        sid = client.post("/v1/sessions").json()["id"]
        response = client.post(f"/v1/sessions/{sid}/messages", json={"content": "Why?"},
                               headers={"Accept": "text/event-stream"})
    events = check_grammar(parse_frames(response.text))
    assert {e["event"] for e in events[1:-1]} == {"token"}
    assert "".join(e["data"]["text"] for e in events[1:-1]) == "".join(SCRIPT)
