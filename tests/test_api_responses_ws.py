"""The Responses WebSocket mode (app/api/responses/websocket.py) with a scripted engine, through
the official `openai` SDK's `client.responses.connect()`, sync and async, against the app served
by uvicorn on a loopback port (the SDK dials a real socket): several responses in a row (text,
a forced function call and its output sent back, json_schema), a `previous_response_id` chain,
a `conversation`, the same events as the SSE stream of the same request, and lanes
(`stream_id`) queued in order."""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import uvicorn

from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine
from tests.test_api_openai_tools import NAMED_TEXT, WEATHER, tokens
from tests.test_api_responses import TEXT_EVENTS

TOOLS: Any = [{"type": "function", "name": "get_weather", "parameters": WEATHER}]
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
          "additionalProperties": False}
JSON_FORMAT: Any = {"format": {"type": "json_schema", "name": "a", "schema": SCHEMA,
                               "strict": True}}
# The SDK's sync client dials with websockets' connect() outside a `with` (websockets 17.1
# deprecates that): the SDK's to fix, not ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore:connect\\(\\) must be used as a context manager:DeprecationWarning")
VOLATILE = {"id", "item_id", "created_at", "completed_at", "response_id"}


class Served:
    """The app on a loopback port, in a thread of its own (its own event loop)."""

    def __init__(self, engine: ScriptedEngine, settings: Settings) -> None:
        config = uvicorn.Config(create_app(settings, engine), host="127.0.0.1", port=0,
                                log_level="warning", ws="websockets-sansio", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            self.thread.join(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(autouse=True, scope="module")
def vllm_imported() -> None:
    """A forced tool call imports vLLM's schema helpers on first use (app/api/openai/tools.py):
    ~30 s on this machine, which would stall the served loop past the SDK's keepalive ping
    (a real engine has imported vLLM long before). Imported here, outside the loop."""
    importlib.import_module("vllm.entrypoints.openai.chat_completion.protocol")
    importlib.import_module("vllm.tool_parsers.utils")


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine(["Hel", "lo", " there", "!"])


@pytest.fixture
def base_url(engine: ScriptedEngine) -> Iterator[str]:
    with Served(engine, Settings(default_max_tokens=200)) as url:
        yield url


@pytest.fixture
def sdk(base_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
        yield client


def until_terminal(connection: Any) -> list[Any]:
    """One response's events off the connection, up to its terminal one."""
    events = []
    for event in connection:
        events.append(event)
        if event.type in ("response.completed", "response.incomplete", "response.failed",
                          "error"):
            return events
    raise AssertionError("the socket closed before the response ended")


def plain(event: Any) -> Any:
    """An event without what differs between two runs of the same request (ids, times)."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in VOLATILE}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return strip(event.model_dump(exclude_none=True))


def test_several_responses_in_a_row_on_one_connection(sdk: openai.OpenAI,
                                                      engine: ScriptedEngine) -> None:
    with sdk.responses.connect() as connection:
        connection.send({"type": "response.create", "model": "scripted", "input": "Hi"})
        text = until_terminal(connection)
        assert [e.type for e in text] == TEXT_EVENTS
        assert [e.sequence_number for e in text] == list(range(len(text)))
        assert text[-1].response.output_text == "Hello there!"

        engine.tokens = tokens(NAMED_TEXT)
        connection.send({"type": "response.create", "model": "scripted", "input": "Weather?",
                         "tools": TOOLS, "previous_response_id": text[-1].response.id,
                         "tool_choice": {"type": "function", "name": "get_weather"}})
        called = until_terminal(connection)[-1].response
        call = called.output[0]
        assert call.type == "function_call" and call.name == "get_weather"
        assert json.loads(call.arguments) == {"city": "París"}

        engine.tokens = ["It is ", "sunny."]
        connection.send({"type": "response.create", "model": "scripted", "tools": TOOLS,
                         "previous_response_id": called.id, "input": [
                             {"type": "function_call_output", "call_id": call.call_id,
                              "output": '{"sky": "clear"}'}]})
        answered = until_terminal(connection)[-1].response
        assert answered.output_text == "It is sunny."
        # The chain's conversation reached the engine: the first turn, the call, its output.
        prompt = "".join(chr(t) for t in engine.prompts[-1])
        assert "Hi" in prompt and "Hello there!" in prompt and '"sky": "clear"' in prompt

        engine.tokens = tokens('{"a": 7}')
        connection.send({"type": "response.create", "model": "scripted", "input": "A?",
                         "text": JSON_FORMAT})
        structured = until_terminal(connection)[-1].response
        assert json.loads(structured.output_text) == {"a": 7}
        assert engine.params[-1].structured is not None
    stored = sdk.responses.retrieve(answered.id)
    assert stored.output_text == "It is sunny." and stored.previous_response_id == called.id


def test_the_same_events_as_the_sse_stream_of_the_same_request(sdk: openai.OpenAI,
                                                               engine: ScriptedEngine) -> None:
    engine.tokens = tokens(NAMED_TEXT)
    request: Any = {"model": "scripted", "input": "Weather?", "tools": TOOLS,
                    "tool_choice": "required", "metadata": {"k": "v"}}
    streamed = list(sdk.responses.create(**request, stream=True))
    with sdk.responses.connect() as connection:
        connection.send({"type": "response.create", **request})
        over_socket = until_terminal(connection)
    assert [plain(e) for e in over_socket] == [plain(e) for e in streamed]
    assert over_socket[-1].response.background is False  # as OpenAI's: not a background one


def test_a_conversation_goes_on_over_the_socket(sdk: openai.OpenAI) -> None:
    conversation = sdk.conversations.create(items=[{"role": "user", "content": "I am Ada."}])
    with sdk.responses.connect() as connection:
        for question in ("Who am I?", "Again?"):
            connection.send({"type": "response.create", "model": "scripted", "input": question,
                             "conversation": conversation.id})
            assert until_terminal(connection)[-1].type == "response.completed"
    items = sdk.conversations.items.list(conversation.id, order="asc").data
    assert [i.content[0].text for i in items] == [  # type: ignore[union-attr]
        "I am Ada.", "Who am I?", "Hello there!", "Again?", "Hello there!"]


def test_creates_sent_at_once_run_one_after_another_in_order(sdk: openai.OpenAI) -> None:
    with sdk.responses.connect() as connection:
        for word in ("one", "two", "three"):
            connection.send({"type": "response.create", "model": "scripted", "input": word,
                             "metadata": {"n": word}})
        runs = [until_terminal(connection) for _ in range(3)]
    # Each response's events are contiguous, its own numbering from 0, in the order sent.
    assert [r[-1].response.metadata for r in runs] == [{"n": "one"}, {"n": "two"},
                                                       {"n": "three"}]
    for run in runs:
        assert [e.type for e in run] == TEXT_EVENTS
        assert len({e.response.id for e in run if hasattr(e, "response")}) == 1


def test_lanes_echo_their_stream_id(sdk: openai.OpenAI) -> None:
    with sdk.responses.connect() as connection:
        for lane in ("a", "b"):
            connection.send({"type": "response.create", "model": "scripted", "input": "Hi",
                             "stream_id": lane})
        events = [e for _ in range(2) for e in until_terminal(connection)]
        while sum(e.type == "response.completed" for e in events) < 2:
            events.append(connection.recv())
    by_lane: dict[str, list[str]] = {}
    for event in events:
        by_lane.setdefault(event.stream_id, []).append(event.type)  # type: ignore[union-attr]
    assert by_lane == {"a": TEXT_EVENTS, "b": TEXT_EVENTS}


async def test_async_connect_chains_responses(base_url: str) -> None:
    async with openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
        await _chain(client)


async def _chain(client: openai.AsyncOpenAI) -> None:
    async with client.responses.connect() as connection:
        await connection.send({"type": "response.create", "model": "scripted", "input": "Hi"})
        first = await _async_until_terminal(connection)
        await connection.send({"type": "response.create", "model": "scripted", "input": "More",
                               "previous_response_id": first.id})
        second = await _async_until_terminal(connection)
    assert (first.output_text, second.output_text) == ("Hello there!", "Hello there!")
    assert second.previous_response_id == first.id
    fetched = await client.responses.retrieve(second.id)
    assert fetched.status == "completed"


async def _async_until_terminal(connection: Any) -> Any:
    async with asyncio.timeout(10):
        async for event in connection:
            if event.type == "response.completed":
                return event.response
            assert event.type != "error", event
    raise AssertionError("the socket closed before the response ended")
