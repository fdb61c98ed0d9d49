"""Tool calls on /v1/chat/completions with a scripted engine that emits the JSON a
structured-output run would: `required` and named functions read back as OpenAI tool calls,
streamed in OpenAI's delta shape, the same calls streamed or not however the text is split;
tool turns reach the template; bad tool input is a 400 naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.api.openai.tool_calls import CallReader
from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine
from tests.test_api_openai import CHAT, assert_openai_error, sse_chunks

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS: Any = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                      "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time"}},
]
REQUIRED_TEXT = ('[{"name": "get_weather", "parameters": {"city": "Paris"}}, '
                 '{"name": "get_time", "parameters": {}}]')
NAMED_TEXT = '{"city": "Par\\u00eds"}'


def tokens(text: str, size: int = 5) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def app_client(engine: ScriptedEngine, **settings: Any) -> TestClient:
    return TestClient(create_app(Settings(default_max_tokens=200, **settings), engine))


def calls_of(message_calls: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in message_calls]


def streamed_calls(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calls a client assembles from the stream, checking OpenAI's delta shape."""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for call in chunk["choices"][0]["delta"].get("tool_calls", []):
            if call["index"] not in calls:  # a call's first delta names it, arguments ""
                assert set(call) == {"index", "id", "type", "function"}, call
                assert call["id"].startswith("call_") and call["type"] == "function"
                assert call["function"]["arguments"] == ""
                calls[call["index"]] = {"id": call["id"], "type": "function",
                                        "function": dict(call["function"])}
            else:  # later ones add fragments
                assert set(call) == {"index", "function"}
                assert set(call["function"]) == {"arguments"}
                calls[call["index"]]["function"]["arguments"] += call["function"]["arguments"]
    return [calls[i] for i in sorted(calls)]


@pytest.mark.parametrize(("choice", "text", "expected"), [
    ("required", REQUIRED_TEXT, [("get_weather", {"city": "Paris"}), ("get_time", {})]),
    ({"type": "function", "function": {"name": "get_weather"}}, NAMED_TEXT,
     [("get_weather", {"city": "París"})]),
])
def test_forced_calls_streamed_and_not_are_the_same(choice: Any, text: str,
                                                    expected: list[Any]) -> None:
    engine = ScriptedEngine(tokens(text))
    with app_client(engine) as client:
        body = {**CHAT, "tools": TOOLS, "tool_choice": choice}
        whole = client.post("/v1/chat/completions", json=body).json()
        streamed = sse_chunks(client.post("/v1/chat/completions",
                                          json={**body, "stream": True}).text)
    message = whole["choices"][0]["message"]
    assert message["content"] is None and message["role"] == "assistant"
    assert all(c["id"].startswith("call_") and c["type"] == "function"
               for c in message["tool_calls"])
    assert calls_of(message["tool_calls"]) == expected
    assert whole["choices"][0]["finish_reason"] == "tool_calls"
    assert calls_of(streamed_calls(streamed)) == expected
    assert streamed[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in streamed] == \
        [None] * (len(streamed) - 1) + ["tool_calls"]
    assert not any("content" in c["choices"][0]["delta"] for c in streamed)
    # The tools reach the template; the reply is constrained to vLLM's schema for them.
    assert engine.rendered[-1][1] == TOOLS
    structured = engine.params[-1].structured
    assert structured is not None and structured.param == "tools"
    schema = json.loads(structured.json or "")
    if choice == "required":
        names = [s["properties"]["name"]["enum"] for s in schema["items"]["anyOf"]]
        assert names == [["get_weather"], ["get_time"]] and "maxItems" not in schema
    else:
        assert schema == WEATHER


@pytest.mark.parametrize(("forced", "text"), [(None, REQUIRED_TEXT), ("get_weather", NAMED_TEXT)])
def test_the_same_calls_wherever_the_text_is_split(forced: str | None, text: str) -> None:
    def read(pieces: list[str]) -> list[Any]:
        reader = CallReader(forced)
        deltas = [{"choices": [{"delta": d}]} for piece in pieces for d in reader.feed(piece)]
        return calls_of(streamed_calls(deltas))

    whole = calls_of(CallReader(forced).message(text)["tool_calls"])
    assert len(whole) == (1 if forced else 2)
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1, 7):
            assert read([text[:i], text[i:j], text[j:]]) == whole, (i, j)


def test_a_cut_reply_keeps_its_complete_calls_and_finish_reason_length() -> None:
    engine = ScriptedEngine(tokens(REQUIRED_TEXT))
    with app_client(engine) as client:
        body = {**CHAT, "tools": TOOLS, "tool_choice": "required", "max_tokens": 14}
        whole = client.post("/v1/chat/completions", json=body).json()
        streamed = sse_chunks(client.post("/v1/chat/completions",
                                          json={**body, "stream": True}).text)
    assert calls_of(whole["choices"][0]["message"]["tool_calls"]) == [
        ("get_weather", {"city": "Paris"})]
    assert whole["choices"][0]["finish_reason"] == "length"
    assert calls_of(streamed_calls(streamed)) == [("get_weather", {"city": "Paris"})]
    assert streamed[-1]["choices"][0]["finish_reason"] == "length"


def test_parallel_tool_calls_false_allows_one_call() -> None:
    engine = ScriptedEngine(tokens(REQUIRED_TEXT))
    with app_client(engine) as client:
        client.post("/v1/chat/completions", json={
            **CHAT, "tools": TOOLS, "tool_choice": "required", "parallel_tool_calls": False})
    assert json.loads(engine.params[-1].structured.json or "")["maxItems"] == 1  # type: ignore[union-attr]


@pytest.mark.parametrize("choice", ["none", None])
def test_none_and_no_parser_reply_in_text_with_the_tools_rendered(choice: str | None) -> None:
    engine = ScriptedEngine()
    with app_client(engine) as client:
        body = {**CHAT, "tools": TOOLS, **({"tool_choice": choice} if choice else {})}
        reply = client.post("/v1/chat/completions", json=body).json()
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": "Hello there!"}
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert engine.rendered[-1][1] == TOOLS and engine.params[-1].structured is None


def test_tool_turns_reach_the_template() -> None:
    engine = ScriptedEngine()
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
    ]
    with app_client(engine) as client:
        response = client.post("/v1/chat/completions",
                               json={"model": "scripted", "messages": messages, "tools": TOOLS})
    assert response.status_code == 200, response.text
    turns = engine.rendered[-1][0]
    assert [(t.role, t.content) for t in turns] == [
        ("user", "Weather in Paris?"), ("assistant", ""), ("tool", "18 C")]
    assert turns[1].extra == {"tool_calls": [{"id": "call_1", "type": "function", "function": {
        "name": "get_weather", "arguments": {"city": "Paris"}}}]}
    assert turns[2].extra == {"tool_call_id": "call_1"}


NAMED = {"type": "function", "function": {"name": "get_weather"}}


@pytest.mark.parametrize(("extra", "param"), [
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tool_choice": NAMED}, "tool_choice"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice"),
    ({"tools": TOOLS, "tool_choice": "auto"}, "tool_choice"),
    ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
    ({"tools": [TOOLS[0], TOOLS[0]]}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "a", "parameters": {"type": 5}}}]},
     "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "retrieval", "function": {"name": "a"}}]}, "tools[0].type"),
    ({"tools": [{"type": "function"}]}, "tools[0].function"),
    ({"tools": TOOLS, "tool_choice": "required", "response_format": {"type": "json_object"}},
     "tool_choice"),
    ({"parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ({"messages": [{"role": "tool", "content": "18 C"}]}, "messages[0].tool_call_id"),
    ({"messages": [{"role": "user", "content": "x", "tool_call_id": "c"}]},
     "messages[0].tool_call_id"),
    ({"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "x", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]},
     "messages[0].tool_calls"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
])
@pytest.mark.parametrize("stream", [False, True])
def test_bad_tool_input_is_a_400_naming_the_field(extra: dict[str, Any], param: str,
                                                  stream: bool) -> None:
    engine = ScriptedEngine()
    with app_client(engine) as client:
        response = client.post("/v1/chat/completions",
                               json={**CHAT, **extra, "stream": stream})
    assert_openai_error(response, 400, param)
    assert engine.params == []


def test_auto_with_a_parser_set_is_accepted_by_validation() -> None:
    from app.api.openai.schemas import ChatCompletionRequest
    from app.validation import validate

    body = {**CHAT, "tools": TOOLS}
    req = validate(ChatCompletionRequest, body, {"tool_call_parser": "hermes"})
    assert req.tool_choice == "auto"
    assert validate(ChatCompletionRequest, body).tool_choice == "none"


HERMES_TEXT = ('Let me check. <tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}'
               '\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>')


def test_auto_with_a_parser_reads_content_and_calls_streamed_and_not() -> None:
    engine = ScriptedEngine(tokens(HERMES_TEXT, 4))
    with app_client(engine, tool_call_parser="hermes") as client:
        body = {**CHAT, "tools": TOOLS}  # no tool_choice: auto, with a parser
        whole = client.post("/v1/chat/completions", json=body).json()
        streamed = sse_chunks(client.post("/v1/chat/completions",
                                          json={**body, "stream": True}).text)
    message = whole["choices"][0]["message"]
    expected = [("get_weather", {"city": "Paris"}), ("get_time", {})]
    assert message["content"] == "Let me check. " and calls_of(message["tool_calls"]) == expected
    assert whole["choices"][0]["finish_reason"] == "tool_calls"
    assert engine.params[-1].structured is None  # the model decides: nothing constrained
    assert calls_of(streamed_calls(streamed)) == expected
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in streamed) == \
        "Let me check. "
    assert streamed[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_auto_without_a_call_is_plain_content() -> None:
    engine = ScriptedEngine()
    with app_client(engine, tool_call_parser="hermes") as client:
        reply = client.post("/v1/chat/completions",
                            json={**CHAT, "tools": TOOLS, "tool_choice": "auto"}).json()
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": "Hello there!"}
    assert reply["choices"][0]["finish_reason"] == "stop"


def test_the_parser_gives_the_same_calls_wherever_the_text_is_split() -> None:
    from app.api.openai.tool_parser import ParserReader, vllm_request

    engine = ScriptedEngine()

    def reader() -> ParserReader:
        return ParserReader(engine.tool_parser("hermes", TOOLS), vllm_request("m", TOOLS))

    whole = reader().message(HERMES_TEXT)
    expected = calls_of(whole["tool_calls"])
    for i in range(len(HERMES_TEXT) + 1):
        for j in range(i, len(HERMES_TEXT) + 1, 11):
            one = reader()
            pieces = [p for part in (HERMES_TEXT[:i], HERMES_TEXT[i:j], HERMES_TEXT[j:])
                      for p in one.feed(part)]
            chunks = [{"choices": [{"delta": p}]} for p in pieces]
            assert calls_of(streamed_calls(chunks)) == expected, (i, j)
            assert "".join(p.get("content", "") for p in pieces) == whole["content"], (i, j)


@pytest.mark.parametrize(("name", "words"), [("nope", "unknown parser"),
                                             ("llama3_json", "does not fit")])
def test_a_parser_that_does_not_exist_or_fit_is_a_config_error(
        name: str, words: str, caplog: pytest.LogCaptureFixture) -> None:
    from app.errors import ConfigError

    with pytest.raises(ConfigError, match=words):
        ScriptedEngine().tool_parser(name, None)
    with app_client(ScriptedEngine(), tool_call_parser=name) as client:
        ready = client.get("/ready")
    assert ready.status_code == 503  # the engine counts as failed: the server stops
    assert f"STREAMCHAT_TOOL_CALL_PARSER: {name!r}" in caplog.text or words in caplog.text
