"""End to end against the real engine: the Responses WebSocket mode through the `openai` SDK's
`client.responses.connect()`. One socket: a text response, a forced function call, its output
sent back on the chain, and json_schema output that validates, in a row; the same events as
the SSE stream of the same request (temperature 0); and a socket dropped mid-response whose
response goes on and is resumed over SSE, on that replica and on another (two replicas, one
Redis)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import openai
import pytest

from tests.e2e_server import LiveServer
from tests.test_api_responses_ws import plain, until_terminal
from tests.test_e2e_responses import MODEL, SCHEMA, TOOLS

# The SDK's sync client dials with websockets' connect() outside a `with` (websockets 17.1
# deprecates that): the SDK's to fix, not ours.
pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings(
    "ignore:connect\\(\\) must be used as a context manager:DeprecationWarning")]


@pytest.fixture
def sdk(live_server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=live_server.url + "/v1", api_key="unused",
                       max_retries=0) as client:
        yield client


def create(**fields: Any) -> Any:
    return {"type": "response.create", "model": MODEL, "temperature": 0, **fields}


def test_an_agent_loop_on_one_socket(sdk: openai.OpenAI) -> None:
    with sdk.responses.connect() as connection:
        connection.send(create(input="Say hello.", max_output_tokens=8))
        text = until_terminal(connection)
        assert [e.sequence_number for e in text] == list(range(len(text)))
        assert text[-1].response.output_text

        connection.send(create(input="Weather in Paris?", tools=TOOLS, tool_choice="required",
                               max_output_tokens=60, previous_response_id=text[-1].response.id))
        called = until_terminal(connection)[-1].response
        call = called.output[0]
        assert call.type == "function_call" and call.name == "get_weather"
        assert json.loads(call.arguments)["city"] in ("Paris", "Oslo")

        connection.send(create(previous_response_id=called.id, tools=TOOLS, max_output_tokens=8,
                               input=[{"type": "function_call_output", "call_id": call.call_id,
                                       "output": '{"sky": "clear"}'}]))
        answered = until_terminal(connection)[-1].response
        assert answered.status in ("completed", "incomplete") and answered.usage is not None
        # The chain's prompt starts with the last turn's: the prefix cache serves it.
        assert answered.usage.input_tokens_details.cached_tokens > 0

        connection.send(create(input="Is the sky blue? Answer in JSON.", max_output_tokens=40,
                               text={"format": {"type": "json_schema", "name": "verdict",
                                                "schema": SCHEMA, "strict": True}}))
        structured = until_terminal(connection)[-1].response
        jsonschema.validate(json.loads(structured.output_text), SCHEMA)


def test_the_same_events_as_the_sse_stream(sdk: openai.OpenAI) -> None:
    request: Any = {"model": MODEL, "input": "Count to three.", "max_output_tokens": 12,
                    "temperature": 0}
    streamed = list(sdk.responses.create(**request, stream=True))
    with sdk.responses.connect() as connection:
        connection.send({"type": "response.create", **request})
        over_socket = until_terminal(connection)
    volatile = {"usage"}  # the second run's prompt is cached: its usage says so
    assert [{k: v for k, v in plain(e).items() if k != "response"} for e in over_socket] == \
        [{k: v for k, v in plain(e).items() if k != "response"} for e in streamed]
    assert over_socket[-1].response.output_text == streamed[-1].response.output_text  # type: ignore[union-attr]
    assert {k for k in plain(over_socket[-1])["response"]} - volatile == \
        {k for k in plain(streamed[-1])["response"]} - volatile


def test_dropped_mid_response_then_resumed_over_sse(sdk: openai.OpenAI) -> None:
    with sdk.responses.connect() as connection:
        connection.send(create(input="Write a long story about a cat.", max_output_tokens=64))
        seen = [connection.recv() for _ in range(6)]
    response_id = seen[0].response.id  # type: ignore[union-attr]
    rest = list(sdk.responses.retrieve(response_id, stream=True, starting_after=5))
    assert [e.sequence_number for e in rest] == list(range(6, 6 + len(rest)))
    final = rest[-1].response  # type: ignore[union-attr]
    assert rest[-1].type in ("response.completed", "response.incomplete")
    assert final.usage is not None and final.usage.output_tokens > 2
    assert sdk.responses.retrieve(response_id).status == final.status


def test_dropped_on_one_replica_then_resumed_on_the_other(
        two_replicas: list[LiveServer]) -> None:
    """The socket drops on one replica; the response goes on there, stored in the shared Redis,
    and a client that reconnects to the other replica reads the rest of its events."""
    first, other = two_replicas
    with openai.OpenAI(base_url=first.url + "/v1", api_key="unused", max_retries=0) as a, \
            openai.OpenAI(base_url=other.url + "/v1", api_key="unused", max_retries=0) as b:
        with a.responses.connect() as connection:
            connection.send(create(input="Write a long story about a cat.",
                                   max_output_tokens=48))
            seen = [connection.recv() for _ in range(5)]
        response_id = seen[0].response.id  # type: ignore[union-attr]
        rest = list(b.responses.retrieve(response_id, stream=True, starting_after=4))
        assert [e.sequence_number for e in rest] == list(range(5, 5 + len(rest)))
        assert rest[-1].type in ("response.completed", "response.incomplete")
        final = rest[-1].response  # type: ignore[union-attr]
        assert final.usage is not None and final.usage.output_tokens > 2
        assert b.responses.retrieve(response_id).status == final.status
