"""End to end against the real engine: the Responses WebSocket mode as node clients speak it,
run with node in tests/node (tests/node_clients.py): the openai node SDK's `ResponsesWS`
(responses_ws.mjs: a text response, a forced function call, its output sent back on the call's
chain, and json_schema output, in a row on one socket) and `@openai/agents`' `OpenAIResponsesWSModel`
(agents_ws.mjs: an Agent with one function tool run to its final output)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import pytest

from tests.e2e_server import LiveServer
from tests.node_clients import NODE_DIR, run_node
from tests.test_e2e_responses import MODEL, SCHEMA

pytestmark = pytest.mark.e2e

TERMINAL = {"response.completed", "response.incomplete"}


def run_script(name: str, server: LiveServer) -> Any:
    """The JSON the script prints last, once it exited 0."""
    result = run_node(NODE_DIR / name, {"OPENAI_BASE_URL": server.url + "/v1",
                                        "OPENAI_API_KEY": "unused", "MODEL": MODEL})
    assert result.returncode == 0, f"{name} exited {result.returncode}:\n{result.stderr[-4000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def output_text(response: dict[str, Any]) -> str:
    return "".join(part["text"] for item in response["output"] if item["type"] == "message"
                   for part in item["content"] if part["type"] == "output_text")


def assert_one_response(step: dict[str, Any]) -> dict[str, Any]:
    """A whole response's events, as the SSE stream has them; its final response."""
    types = [event_type for event_type, _ in step["events"]]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] in TERMINAL and not TERMINAL & set(types[:-1])
    assert [number for _, number in step["events"]] == list(range(len(types)))
    response: dict[str, Any] = step["response"]
    assert response["status"] == types[-1].removeprefix("response.")
    assert response["usage"]["output_tokens"] > 0
    return response


def test_the_node_sdk_runs_an_agent_loop_on_one_socket(live_server: LiveServer) -> None:
    steps = run_script("responses_ws.mjs", live_server)

    text = assert_one_response(steps["text"])
    assert steps["text"]["text"] and steps["text"]["text"] == output_text(text)

    called = assert_one_response(steps["called"])
    call = called["output"][0]
    assert call["type"] == "function_call" and call["name"] == "get_weather"
    assert json.loads(call["arguments"])["city"] in ("Paris", "Oslo")
    assert "response.function_call_arguments.done" in [t for t, _ in steps["called"]["events"]]

    answered = assert_one_response(steps["answered"])
    assert answered["previous_response_id"] == called["id"] and output_text(answered)

    structured = assert_one_response(steps["structured"])
    jsonschema.validate(json.loads(output_text(structured)), SCHEMA)
    assert len({text["id"], called["id"], answered["id"], structured["id"]}) == 4


def test_an_openai_agents_agent_calls_its_tool_over_the_websocket(
        live_server: LiveServer) -> None:
    run = run_script("agents_ws.mjs", live_server)
    assert run["model"] == "OpenAIResponsesWSModel"
    assert run["calls"] and set(run["calls"]) <= {"Paris", "Oslo"}  # the tool ran, in node
    first, *rest = run["responses"]
    assert "function_call" in first["output"] and rest  # then a turn with the tool's output
    assert isinstance(run["finalOutput"], str) and run["finalOutput"].strip()
    for response in run["responses"]:  # each turn a response of streamchat's, stored
        stored = httpx.get(f"{live_server.url}/v1/responses/{response['id']}", timeout=10)
        assert stored.status_code == 200 and stored.json()["status"] in ("completed",
                                                                          "incomplete")
