"""Chat completions with `STREAMCHAT_REASONING_PARSER` (scripted engine, vLLM's parsers): the
reasoning in `reasoning_content`, the answer in `content`, streamed or not the same; tool calls
read from the answer only; without a parser nothing changes; the openai SDK, sync and async,
sees the field; a parser that does not exist or fit stops the start."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.conftest import Start
from tests.fakes import ScriptedEngine
from tests.sdk_clients import async_sdk_for, sdk_for
from tests.test_api_openai import CHAT, sse_chunks
from tests.test_api_openai_tools import HERMES_TEXT, REQUIRED_TEXT, TOOLS, calls_of, streamed_calls
from tests.test_reasoning import steps

REPLY = "<think>plan it</think>The answer."


def client_of(engine: ScriptedEngine, **settings: Any) -> TestClient:
    return TestClient(create_app(Settings(default_max_tokens=200, **settings), engine))


def joined(chunks: list[dict[str, Any]], key: str) -> str:
    return "".join(c["choices"][0]["delta"].get(key) or "" for c in chunks if c["choices"])


@pytest.mark.parametrize("name", ["deepseek_r1", "qwen3"])
def test_reasoning_apart_streamed_and_not(name: str) -> None:
    with client_of(ScriptedEngine(steps(REPLY)), reasoning_parser=name) as client:
        whole = client.post("/v1/chat/completions", json=CHAT).json()
        chunks = sse_chunks(client.post("/v1/chat/completions",
                                        json={**CHAT, "stream": True}).text)
    assert whole["choices"][0]["message"] == {"role": "assistant", "content": "The answer.",
                                              "reasoning_content": "plan it"}
    assert joined(chunks, "reasoning_content") == "plan it"
    assert joined(chunks, "content") == "The answer."
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "reasoning_content": "p"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_the_same_split_however_the_steps_cut_the_reply() -> None:
    tokens = steps(REPLY)
    for i in range(1, len(tokens)):
        script = ["".join(tokens[:i]), "".join(tokens[i:])]
        with client_of(ScriptedEngine(script), reasoning_parser="qwen3") as client:
            whole = client.post("/v1/chat/completions", json=CHAT).json()
            chunks = sse_chunks(client.post("/v1/chat/completions",
                                            json={**CHAT, "stream": True}).text)
        message = whole["choices"][0]["message"]
        assert (message["reasoning_content"], message["content"]) == ("plan it", "The answer.")
        assert (joined(chunks, "reasoning_content"), joined(chunks, "content")) == \
            ("plan it", "The answer."), script


def test_all_reasoning_has_null_content() -> None:
    with client_of(ScriptedEngine(steps("<think>cut short")), reasoning_parser="qwen3") as client:
        message = client.post("/v1/chat/completions", json=CHAT).json()["choices"][0]["message"]
    assert message == {"role": "assistant", "content": None, "reasoning_content": "cut short"}


def test_tool_calls_are_read_from_the_answer_only() -> None:
    auto = [*steps("<think>Call get_weather, then get_time.</think>"), HERMES_TEXT]
    with client_of(ScriptedEngine(auto), reasoning_parser="deepseek_r1",
                   tool_call_parser="hermes") as client:
        body = {**CHAT, "tools": TOOLS, "tool_choice": "auto"}
        whole = client.post("/v1/chat/completions", json=body).json()
        chunks = sse_chunks(client.post("/v1/chat/completions",
                                        json={**body, "stream": True}).text)
    expected = [("get_weather", {"city": "Paris"}), ("get_time", {})]
    message = whole["choices"][0]["message"]
    assert message["reasoning_content"] == "Call get_weather, then get_time."
    assert message["content"] == "Let me check. " and calls_of(message["tool_calls"]) == expected
    assert whole["choices"][0]["finish_reason"] == "tool_calls"
    assert joined(chunks, "reasoning_content") == "Call get_weather, then get_time."
    assert calls_of(streamed_calls(chunks)) == expected
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_forced_call_after_reasoning() -> None:
    script = [*steps("<think>Both.</think>"), REQUIRED_TEXT]
    with client_of(ScriptedEngine(script), reasoning_parser="deepseek_r1") as client:
        reply = client.post("/v1/chat/completions",
                            json={**CHAT, "tools": TOOLS, "tool_choice": "required"}).json()
    message = reply["choices"][0]["message"]
    assert message["reasoning_content"] == "Both." and message["content"] is None
    assert [name for name, _ in calls_of(message["tool_calls"])] == ["get_weather", "get_time"]


def test_without_a_parser_the_think_tags_are_content() -> None:
    with client_of(ScriptedEngine(steps(REPLY))) as client:
        whole = client.post("/v1/chat/completions", json=CHAT).json()
        chunks = sse_chunks(client.post("/v1/chat/completions",
                                        json={**CHAT, "stream": True}).text)
    assert whole["choices"][0]["message"] == {"role": "assistant", "content": REPLY}
    assert joined(chunks, "content") == REPLY
    assert all("reasoning_content" not in c["choices"][0]["delta"] for c in chunks)


@pytest.mark.parametrize(("name", "words"), [("nope", "unknown parser"),
                                             ("mistral", "does not fit")])
def test_a_parser_that_does_not_exist_or_fit_stops_the_start(
        name: str, words: str, caplog: pytest.LogCaptureFixture) -> None:
    with client_of(ScriptedEngine(), reasoning_parser=name) as client:
        ready = client.get("/ready")
    assert ready.status_code == 503  # the engine counts as failed: the server stops
    assert f"STREAMCHAT_REASONING_PARSER: {name!r}" in caplog.text or words in caplog.text
    assert words in caplog.text


def test_the_sdk_sync_streaming_and_not() -> None:
    with client_of(ScriptedEngine(steps(REPLY)), reasoning_parser="deepseek_r1") as test_client:
        sdk = sdk_for(test_client)
        reply = sdk.chat.completions.create(model="scripted", messages=CHAT["messages"])
        message: Any = reply.choices[0].message
        assert (message.reasoning_content, message.content) == ("plan it", "The answer.")
        deltas: Any = [c.choices[0].delta for c in sdk.chat.completions.create(
            model="scripted", messages=CHAT["messages"], stream=True)]
    assert "".join(getattr(d, "reasoning_content", None) or "" for d in deltas) == "plan it"
    assert "".join(d.content or "" for d in deltas) == "The answer."


async def test_the_sdk_async_streaming_and_not(running: Start) -> None:
    app = await running(Settings(default_max_tokens=200, reasoning_parser="qwen3"),
                        ScriptedEngine(steps(REPLY)))
    async with async_sdk_for(app) as sdk:
        reply = await sdk.chat.completions.create(model="scripted", messages=CHAT["messages"])
        message: Any = reply.choices[0].message
        assert message.model_extra["reasoning_content"] == "plan it"
        assert message.content == "The answer."
        stream = await sdk.chat.completions.create(model="scripted", messages=CHAT["messages"],
                                                   stream=True)
        deltas: Any = [chunk.choices[0].delta async for chunk in stream]
    assert "".join(d.model_extra.get("reasoning_content") or "" for d in deltas) == "plan it"
    assert "".join(d.content or "" for d in deltas) == "The answer."


def test_a_reply_sent_back_with_its_reasoning_gives_it_to_the_template() -> None:
    engine = ScriptedEngine()
    history = [{"role": "user", "content": "Hi"},
               {"role": "assistant", "content": "A", "reasoning_content": "plan"},
               {"role": "assistant", "content": "B", "reasoning": "more"},
               {"role": "user", "content": "Again"}]
    with client_of(engine) as client:
        reply = client.post("/v1/chat/completions", json={**CHAT, "messages": history})
    assert reply.status_code == 200, reply.text
    turns = engine.rendered[-1][0]
    assert [t.extra.get("reasoning_content") for t in turns] == [None, "plan", "more", None]
    assert [t.content for t in turns] == ["Hi", "A", "B", "Again"]
