"""The official `openai` SDK, sync and async, streaming and not, with tools and a scripted
engine that emits what structured output would: the SDK parses the calls into its own types,
and its stream helper assembles the same calls from the deltas."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.conftest import Start
from tests.fakes import ScriptedEngine
from tests.sdk_clients import async_sdk_for, sdk_for
from tests.test_api_openai_tools import NAMED_TEXT, REQUIRED_TEXT, TOOLS, tokens

MESSAGES: Any = [{"role": "user", "content": "Weather in Paris?"}]
NAMED: Any = {"type": "function", "function": {"name": "get_weather"}}
BOTH = [("get_weather", {"city": "Paris"}), ("get_time", {})]


def calls(message: Any) -> list[tuple[str, Any]]:
    return [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls]


@pytest.fixture
def sdk() -> Iterator[openai.OpenAI]:
    engine = ScriptedEngine(tokens(REQUIRED_TEXT, 3))
    with TestClient(create_app(Settings(default_max_tokens=200), engine)) as test_client:
        yield sdk_for(test_client)


def test_sync_required_streaming_and_not(sdk: openai.OpenAI) -> None:
    reply = sdk.chat.completions.create(model="scripted", messages=MESSAGES, tools=TOOLS,
                                        tool_choice="required")
    assert reply.choices[0].finish_reason == "tool_calls"
    assert reply.choices[0].message.content is None
    assert calls(reply.choices[0].message) == BOTH
    assert all(c.id.startswith("call_") for c in reply.choices[0].message.tool_calls or [])
    with sdk.chat.completions.stream(model="scripted", messages=MESSAGES, tools=TOOLS,
                                     tool_choice="required") as stream:
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls"
    assert calls(final.choices[0].message) == BOTH
    raw = list(sdk.chat.completions.create(model="scripted", messages=MESSAGES, tools=TOOLS,
                                           tool_choice="required", stream=True))
    assert [c.choices[0].finish_reason for c in raw][-1] == "tool_calls"


def test_sync_bad_tool_choice_is_a_bad_request(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="scripted", messages=MESSAGES, tools=TOOLS,
                                    tool_choice="auto")
    assert info.value.body["param"] == "tool_choice"  # type: ignore[index]
    assert "STREAMCHAT_TOOL_CALL_PARSER" in info.value.body["message"]  # type: ignore[index]


async def test_async_named_streaming_and_not(running: Start) -> None:
    engine = ScriptedEngine(tokens(NAMED_TEXT, 2))
    app = await running(Settings(default_max_tokens=200), engine)
    async with async_sdk_for(app) as sdk:
        reply = await sdk.chat.completions.create(model="scripted", messages=MESSAGES,
                                                  tools=TOOLS, tool_choice=NAMED)
        assert calls(reply.choices[0].message) == [("get_weather", {"city": "París"})]
        async with sdk.chat.completions.stream(model="scripted", messages=MESSAGES,
                                               tools=TOOLS, tool_choice=NAMED) as stream:
            final = await stream.get_final_completion()
        assert calls(final.choices[0].message) == [("get_weather", {"city": "París"})]
        assert final.choices[0].finish_reason == "tool_calls"
