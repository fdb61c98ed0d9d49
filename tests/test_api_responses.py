"""/v1/responses with a scripted engine, through the official `openai` SDK where it has the
call: whole, streamed with typed events, chained with `previous_response_id`, stored or not,
tools and structured output, and bad input as 400s that name the field."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.conftest import Start
from tests.fakes import ScriptedEngine
from tests.sdk_clients import async_sdk_for, client, engine, sdk_for
from tests.test_api_openai_tools import NAMED_TEXT, REQUIRED_TEXT, WEATHER, tokens

__all__ = ["client", "engine"]  # the SDK tests' fixtures

TOOLS: Any = [{"type": "function", "name": "get_weather", "description": "Weather now",
               "parameters": WEATHER},
              {"type": "function", "name": "get_time", "parameters": None}]
TEXT_EVENTS = ["response.created", "response.in_progress", "response.output_item.added",
               "response.content_part.added", *["response.output_text.delta"] * 4,
               "response.output_text.done", "response.content_part.done",
               "response.output_item.done", "response.completed"]


def test_a_whole_response_is_stored_and_fetched(client: TestClient) -> None:
    sdk = sdk_for(client)
    response = sdk.responses.create(model="scripted", input="Hi", metadata={"k": "v"})
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.output_text == "Hello there!"
    message = response.output[0]
    assert message.type == "message" and message.role == "assistant"
    assert message.status == "completed" and message.id.startswith("msg_")
    assert response.usage is not None and response.usage.output_tokens == 4
    assert response.usage.total_tokens == response.usage.input_tokens + 4
    assert response.metadata == {"k": "v"} and response.store is True
    fetched = sdk.responses.retrieve(response.id)
    assert fetched.model_dump() == response.model_dump()


def test_streamed_events_are_typed_numbered_and_build_the_same_response(
        client: TestClient) -> None:
    sdk = sdk_for(client)
    events = list(sdk.responses.create(model="scripted", input="Hi", stream=True))
    assert [e.type for e in events] == TEXT_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "Hello there!"
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == "Hello there!"
    whole = sdk.responses.create(model="scripted", input="Hi")
    assert [o.model_dump(exclude={"id"}) for o in final.output] == \
        [o.model_dump(exclude={"id"}) for o in whole.output]
    # The SDK's own helper assembles the same.
    with sdk.responses.stream(model="scripted", input="Hi") as stream:
        assert stream.get_final_response().output_text == "Hello there!"
    raw = client.post("/v1/responses", json={"model": "scripted", "input": "Hi", "stream": True})
    assert raw.text.startswith("event: response.created\nid: 0\ndata: {")


def test_chaining_renders_the_conversation_without_old_instructions(
        client: TestClient, engine: ScriptedEngine) -> None:
    sdk = sdk_for(client)
    first = sdk.responses.create(model="scripted", input="Hi", instructions="Be brief.")
    assert [(t.role, t.content) for t in engine.rendered[-1][0]] == \
        [("system", "Be brief."), ("user", "Hi")]
    second = sdk.responses.create(model="scripted", input="Again", previous_response_id=first.id,
                                  instructions="Be kind.")
    assert second.previous_response_id == first.id
    assert [(t.role, t.content) for t in engine.rendered[-1][0]] == [
        ("system", "Be kind."), ("user", "Hi"), ("assistant", "Hello there!"), ("user", "Again")]
    # A fork: another reply to the first response sees the first, not the second.
    sdk.responses.create(model="scripted", input="Other", previous_response_id=first.id)
    assert [t.content for t in engine.rendered[-1][0]] == ["Hi", "Hello there!", "Other"]


def test_store_false_is_neither_fetched_nor_chained(client: TestClient) -> None:
    sdk = sdk_for(client)
    response = sdk.responses.create(model="scripted", input="Hi", store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(response.id)
    with pytest.raises(openai.BadRequestError) as info:
        sdk.responses.create(model="scripted", input="x", previous_response_id=response.id)
    assert info.value.body["param"] == "previous_response_id"  # type: ignore[index]


def test_delete(client: TestClient) -> None:
    sdk = sdk_for(client)
    response = sdk.responses.create(model="scripted", input="Hi")
    sdk.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(response.id)


@pytest.mark.parametrize(("choice", "text", "expected"), [
    ("required", REQUIRED_TEXT, [("get_weather", {"city": "Paris"}), ("get_time", {})]),
    ({"type": "function", "name": "get_weather"}, NAMED_TEXT, [("get_weather", {"city": "París"})]),
])
def test_function_calls_streamed_and_whole_are_the_same(choice: Any, text: str,
                                                        expected: list[Any]) -> None:
    engine = ScriptedEngine(tokens(text, 3))
    with TestClient(create_app(Settings(default_max_tokens=200), engine)) as client:
        sdk = sdk_for(client)
        whole = sdk.responses.create(model="scripted", input="Weather?", tools=TOOLS,
                                     tool_choice=choice)
        events = list(sdk.responses.create(model="scripted", input="Weather?", tools=TOOLS,
                                           tool_choice=choice, stream=True))
        calls = [o for o in whole.output if o.type == "function_call"]
        assert [(c.name, json.loads(c.arguments)) for c in calls] == expected
        assert all(c.call_id.startswith("call_") and c.status == "completed" for c in calls)
        streamed: dict[str, str] = {}
        for event in events:
            if event.type == "response.function_call_arguments.delta":
                streamed[event.item_id] = streamed.get(event.item_id, "") + event.delta
        done = [e for e in events if e.type == "response.function_call_arguments.done"]
        assert [(e.name, json.loads(e.arguments)) for e in done] == expected
        assert [streamed[e.item_id] for e in done] == [e.arguments for e in done]
        # The caller answers the calls; the next turn's prompt carries them and the answers.
        outputs = [{"type": "function_call_output", "call_id": c.call_id, "output": "sunny"}
                   for c in calls]
        sdk.responses.create(model="scripted", input=outputs, previous_response_id=whole.id,
                             tools=TOOLS)
    turns = engine.rendered[-1][0]
    assert [t.role for t in turns] == ["user", "assistant", *["tool"] * len(calls)]
    assert [c["function"]["name"] for c in turns[1].extra["tool_calls"]] == \
        [name for name, _ in expected]
    assert engine.rendered[-1][1] is not None  # the tools reach the template


def test_text_format_json_schema_constrains_the_reply(client: TestClient,
                                                      engine: ScriptedEngine) -> None:
    response = client.post("/v1/responses", json={
        "model": "scripted", "input": "Weather?", "text": {"format": {
            "type": "json_schema", "name": "weather", "schema": WEATHER, "strict": True}}})
    assert response.status_code == 200
    assert response.json()["text"]["format"]["schema"] == WEATHER
    structured = engine.params[-1].structured
    assert structured is not None and json.loads(structured.json or "") == WEATHER


def test_max_output_tokens_ends_incomplete(client: TestClient) -> None:
    response = sdk_for(client).responses.create(model="scripted", input="Hi",
                                                max_output_tokens=2)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "Hello"


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "x"}, "model"),
    ({"input": []}, "input"),
    ({"input": [{"role": "robot", "content": "x"}]}, "input[0]"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
     "input[0]"),
    ({"input": [{"type": "function_call_output", "output": "3"}]}, "input[0]"),
    ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "[1"}]},
     "input"),
    ({"input": "x", "tools": [{"type": "web_search"}]}, "tools[0]"),
    ({"input": "x", "tool_choice": "required"}, "tool_choice"),
    ({"input": "x", "text": {"format": {"type": "xml"}}}, "text.format"),
    ({"input": "x", "text": {"format": {"type": "json_schema", "name": "a",
                                        "schema": {"type": "nope"}}}}, "text.format"),
    ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"input": "x", "temperature": 3}, "temperature"),
    ({"input": "x", "reasoning": {"effort": "low"}}, "reasoning"),
    ({"input": "x", "truncation": "auto"}, "truncation"),
    ({"input": "x", "background": True, "store": False}, "background"),
    ({"input": "x", "previous_response_id": "resp_nope"}, "previous_response_id"),
    ({"input": "x", "frequency": 1}, "frequency"),
])
def test_bad_input_is_a_400_naming_the_field(client: TestClient, body: dict[str, Any],
                                             param: str) -> None:
    whole = body if param == "model" else {"model": "scripted", **body}
    response = client.post("/v1/responses", json=whole)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_unknown_ids_are_404s(client: TestClient) -> None:
    for method, path in (("GET", "/v1/responses/resp_x"), ("POST", "/v1/responses/resp_x/cancel"),
                         ("DELETE", "/v1/responses/resp_x")):
        response = client.request(method, path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "response_not_found"


async def test_async_sdk_streams_and_chains(running: Start) -> None:
    engine = ScriptedEngine(["Hel", "lo", " there", "!"])
    app = await running(Settings(default_max_tokens=200), engine)
    async with async_sdk_for(app) as sdk:
        first = await sdk.responses.create(model="scripted", input="Hi")
        stream = await sdk.responses.create(model="scripted", input="More", stream=True,
                                            previous_response_id=first.id)
        types = [event.type async for event in stream]
    assert types == TEXT_EVENTS
    assert [t.content for t in engine.rendered[-1][0]] == ["Hi", "Hello there!", "More"]


def test_reasoning_is_its_own_item_and_stays_out_of_the_chain() -> None:
    from tests.test_reasoning import steps

    engine = ScriptedEngine(steps("<think>plan it</think>The answer."))
    settings = Settings(default_max_tokens=200, reasoning_parser="qwen3")
    with TestClient(create_app(settings, engine)) as client:
        sdk = sdk_for(client)
        whole = sdk.responses.create(model="scripted", input="Why?")
        events = list(sdk.responses.create(model="scripted", input="Why?", stream=True))
        sdk.responses.create(model="scripted", input="And?", previous_response_id=whole.id)
    reasoning, message = whole.output
    assert message.type == "message"
    assert reasoning.type == "reasoning" and reasoning.id.startswith("rs_")
    assert [c.text for c in reasoning.content or []] == ["plan it"]
    assert whole.output_text == "The answer."
    thought = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert thought == "plan it"
    assert [e.text for e in events if e.type == "response.reasoning_text.done"] == ["plan it"]
    assert events[-1].response.output_text == "The answer."  # type: ignore[union-attr]
    assert [(t.role, t.content) for t in engine.rendered[-1][0]] == \
        [("user", "Why?"), ("assistant", "The answer."), ("user", "And?")]
