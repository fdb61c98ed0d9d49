"""End to end against the real engine: the Responses API through the `openai` SDK. Text,
a chain whose second turn the prefix cache serves, structured output that validates, forced
function calls, and a background response resumed from a sequence number, then cancelled."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import jsonschema
import openai
import pytest

from tests.e2e_server import ORPHAN_GRACE_S, LiveServer

pytestmark = pytest.mark.e2e
MODEL = "SmolLM2-135M-Instruct"
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["answer"],
          "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}}}
WEATHER = {"type": "object", "additionalProperties": False, "required": ["city"],
           "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo"]}}}
TOOLS: Any = [{"type": "function", "name": "get_weather", "parameters": WEATHER}]


@pytest.fixture
def sdk(live_server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=live_server.url + "/v1", api_key="unused",
                       max_retries=0) as client:
        yield client


def test_text_streamed_and_chained_with_the_prefix_cache(sdk: openai.OpenAI) -> None:
    events = list(sdk.responses.create(model=MODEL, input="Say hello.", max_output_tokens=8,
                                       temperature=0, stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    first = events[-1].response  # type: ignore[union-attr]
    assert first.status in ("completed", "incomplete") and first.output_text
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == \
        first.output_text
    second = sdk.responses.create(model=MODEL, input="Again.", previous_response_id=first.id,
                                  max_output_tokens=4, temperature=0)
    assert second.output_text and second.usage is not None
    # Its prompt starts with the first one's prompt and reply: vLLM's prefix cache has them.
    assert second.usage.input_tokens_details.cached_tokens > 0
    assert sdk.responses.retrieve(second.id).output_text == second.output_text


def test_json_schema_output_validates(sdk: openai.OpenAI) -> None:
    response = sdk.responses.create(
        model=MODEL, input="Is the sky blue? Answer in JSON.", max_output_tokens=40,
        temperature=0, text={"format": {"type": "json_schema", "name": "verdict",
                                        "schema": SCHEMA, "strict": True}})
    jsonschema.validate(json.loads(response.output_text), SCHEMA)


def test_forced_function_call(sdk: openai.OpenAI) -> None:
    response = sdk.responses.create(model=MODEL, input="Weather in Paris?", tools=TOOLS,
                                    tool_choice="required", max_output_tokens=60, temperature=0)
    calls = [o for o in response.output if o.type == "function_call"]
    assert calls and all(c.name == "get_weather" for c in calls)
    for call in calls:
        jsonschema.validate(json.loads(call.arguments), WEATHER)


def test_background_resumed_then_cancelled(sdk: openai.OpenAI) -> None:
    queued = sdk.responses.create(model=MODEL, input="Write a long story.", background=True,
                                  max_output_tokens=400,
                                  extra_body={"ignore_eos": True})  # vLLM's: no early end
    assert queued.status == "queued"
    seen: list[Any] = []
    with sdk.responses.retrieve(queued.id, stream=True) as stream:
        for event in stream:
            seen.append(event)
            if event.type == "response.output_text.delta" and len(seen) > 8:
                break  # the client leaves; the response goes on without it
    time.sleep(ORPHAN_GRACE_S + 0.5)  # past the grace a reply with no listener gets
    after = seen[-1].sequence_number
    rest = sdk.responses.retrieve(queued.id, stream=True, starting_after=after)
    resumed = next(iter(rest))
    assert resumed.sequence_number == after + 1
    cancelled = sdk.responses.cancel(queued.id)
    assert cancelled.status == "cancelled" and cancelled.output_text
    assert sdk.responses.retrieve(queued.id).status == "cancelled"
