"""End to end against the real engine: `tool_choice` required and named through structured
output, with a model that has no tool-call format of its own. The call names one of the tools
and its arguments validate against that tool's parameters, streamed (assembled from OpenAI's
deltas by the SDK's own stream helper) and not, sync and async."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import openai
import pytest

from tests.e2e_server import LiveServer

pytestmark = pytest.mark.e2e
MODEL = "SmolLM2-135M-Instruct"
ASK: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
PARAMETERS = {
    "get_weather": {"type": "object", "additionalProperties": False, "required": ["city"],
                    "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo"]}}},
    "get_time": {"type": "object", "additionalProperties": False, "required": ["zone"],
                 "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}}},
}
TOOLS: Any = [{"type": "function", "function": {"name": name, "parameters": schema}}
              for name, schema in PARAMETERS.items()]
NAMED: Any = {"type": "function", "function": {"name": "get_time"}}
SMALL = {"model": MODEL, "messages": ASK, "tools": TOOLS, "max_tokens": 60, "temperature": 0}


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=live_server.url + "/v1", api_key="unused",
                       max_retries=0) as sdk:
        yield sdk


def assert_valid_calls(calls: Any, only: str | None = None) -> None:
    assert calls, "no tool call"
    for call in calls:
        assert call.id.startswith("call_") and call.type == "function"
        assert call.function.name in PARAMETERS and call.function.name == (
            only or call.function.name)
        jsonschema.validate(json.loads(call.function.arguments), PARAMETERS[call.function.name])


@pytest.mark.parametrize(("choice", "only"), [("required", None), (NAMED, "get_time")])
def test_forced_calls_are_valid_streaming_and_not(client: openai.OpenAI, choice: Any,
                                                  only: str | None) -> None:
    reply = client.chat.completions.create(**SMALL, tool_choice=choice,
                                           parallel_tool_calls=False)
    assert reply.choices[0].finish_reason == "tool_calls"
    assert reply.choices[0].message.content is None
    assert_valid_calls(reply.choices[0].message.tool_calls, only)
    with client.chat.completions.stream(**SMALL, tool_choice=choice,
                                        parallel_tool_calls=False) as stream:
        streamed = stream.get_final_completion()
    assert streamed.choices[0].finish_reason == "tool_calls"
    assert_valid_calls(streamed.choices[0].message.tool_calls, only)
    # Greedy, so the same calls either way.
    assert [(c.function.name, json.loads(c.function.arguments))
            for c in streamed.choices[0].message.tool_calls or []] == [
        (c.function.name, json.loads(c.function.arguments))
        for c in reply.choices[0].message.tool_calls or []]


def test_async_required_streaming_and_not(live_server: LiveServer) -> None:
    async def run() -> None:
        async with openai.AsyncOpenAI(base_url=live_server.url + "/v1", api_key="unused",
                                      max_retries=0) as sdk:
            reply = await sdk.chat.completions.create(**SMALL, tool_choice="required")
            if reply.choices[0].finish_reason == "tool_calls":
                assert_valid_calls(reply.choices[0].message.tool_calls)
            async with sdk.chat.completions.stream(**SMALL, tool_choice=NAMED) as stream:
                streamed = await stream.get_final_completion()
            assert_valid_calls(streamed.choices[0].message.tool_calls, "get_time")

    asyncio.run(run())


def test_a_tool_result_turn_is_answered(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, max_tokens=20, temperature=0, tools=TOOLS, tool_choice="none",
        messages=[*ASK, {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C and sunny"}])
    assert reply.choices[0].message.content and not reply.choices[0].message.tool_calls
