"""The Responses WebSocket's edges, with Starlette's test client: every malformed client event
answered by an `error` event naming its field, the socket still open; auth and the Origin rule
at the handshake, as the session socket's; a dropped socket whose response goes on and is
resumed over SSE, on the same replica and on another sharing Redis; at most 16
creates waiting or running."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine
from tests.redis_server import RedisServer
from tests.sse_parse import parse_frames
from tests.test_api_responses import TEXT_EVENTS

URL = "/v1/responses"
HI: dict[str, Any] = {"type": "response.create", "model": "scripted", "input": "Hi"}
TOKENS = [f"w{i} " for i in range(30)]
KEY = "sk-alice-1"


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(default_max_tokens=200), ScriptedEngine())) as c:
        yield c


def until_terminal(ws: Any) -> list[dict[str, Any]]:
    events = [ws.receive_json()]
    while events[-1]["type"] not in ("response.completed", "response.failed", "error"):
        events.append(ws.receive_json())
    return events


@pytest.mark.parametrize(("event", "param", "code"), [
    (b"{not json", None, "bad_event"),
    (b"[1]", "type", "bad_event"),
    ({"input": "Hi"}, "type", "bad_event"),
    ({"type": "response.cancel"}, "type", "unknown_event"),
    ({"type": "response.steer", "previous_response_id": "resp_x", "input": "go"}, "type",
     "unsupported_event"),
    ({**HI, "background": True}, "background", "invalid_request"),
    ({**HI, "temperature": "hot"}, "temperature", "invalid_request"),
    ({**HI, "input": []}, "input", "invalid_request"),
    ({**HI, "model": "gpt-none"}, "model", None),
    ({**HI, "tool_choice": "required"}, "tool_choice", "invalid_request"),
    ({**HI, "text": {"format": {"type": "json_schema", "name": "a", "schema": 3}}},
     "text.format", "invalid_request"),
    ({**HI, "previous_response_id": "resp_nope"}, "previous_response_id",
     "previous_response_not_found"),
    ({**HI, "surprise": 1}, "surprise", None),
])
def test_a_bad_event_gets_an_error_naming_its_field_and_the_socket_stays_open(
        client: TestClient, event: Any, param: str | None, code: str | None) -> None:
    with client.websocket_connect(URL) as ws:
        if isinstance(event, bytes):
            ws.send_bytes(event)
        else:
            ws.send_json(event)
        error = ws.receive_json()
        assert error["type"] == "error" and error["status"] in (400, 404), error
        assert error["error"]["param"] == param and error["error"]["message"]
        if code is not None:
            assert error["error"]["code"] == code
        ws.send_json(HI)  # still open, and still serving
        assert [e["type"] for e in until_terminal(ws)] == TEXT_EVENTS


def test_an_error_answers_in_the_lane_it_was_sent_in(client: TestClient) -> None:
    with client.websocket_connect(URL) as ws:
        ws.send_json({**HI, "stream_id": "x", "previous_response_id": "resp_nope"})
        error = ws.receive_json()
        assert error["stream_id"] == "x" and error["error"]["param"] == "previous_response_id"


def test_a_plain_get_is_not_the_socket(client: TestClient) -> None:
    assert client.get(URL).status_code == 405


@pytest.fixture
def secured() -> Iterator[TestClient]:
    settings = Settings(default_max_tokens=200, api_keys=f"alice:{KEY}:chat")
    with TestClient(create_app(settings, ScriptedEngine())) as c:
        yield c


def test_auth_at_the_handshake_by_header_or_subprotocol(secured: TestClient) -> None:
    with pytest.raises(WebSocketDenialResponse) as denied:
        with secured.websocket_connect(URL):
            pass
    assert denied.value.status_code == 401
    with secured.websocket_connect(URL, headers={"authorization": f"Bearer {KEY}"}) as ws:
        ws.send_json(HI)
        done = until_terminal(ws)[-1]
    # The response is the key's: another key's (or none) finds nothing.
    response_id = done["response"]["id"]
    assert secured.get(f"/v1/responses/{response_id}").status_code == 401
    with secured.websocket_connect(URL, subprotocols=["openai", f"bearer.{KEY}"]) as ws:
        assert ws.accepted_subprotocol == "openai"  # never the key itself
        ws.send_json({**HI, "previous_response_id": response_id})
        assert until_terminal(ws)[-1]["type"] == "response.completed"


@pytest.mark.parametrize(("origin", "status"), [
    (None, 101), ("http://localhost", 101), ("https://evil.example", 403), ("null", 403)])
def test_the_origin_rule_of_the_session_socket(client: TestClient, origin: str | None,
                                               status: int) -> None:
    headers = {"origin": origin} if origin is not None else {}
    try:
        with client.websocket_connect(URL, headers=headers):
            got = 101
    except WebSocketDenialResponse as denied:
        got = denied.status_code
    assert got == status


def _drop_after(client: TestClient, seen: int) -> str:
    """Open the socket, start a response, read `seen` events, and drop the socket."""
    with client.websocket_connect(URL) as ws:
        ws.send_json(HI)
        events = [ws.receive_json() for _ in range(seen)]
    assert [e["sequence_number"] for e in events] == list(range(seen))
    return str(events[0]["response"]["id"])


def _rest(client: TestClient, response_id: str, after: int) -> list[dict[str, Any]]:
    answer = client.get(f"/v1/responses/{response_id}?stream=true&starting_after={after}")
    assert answer.status_code == 200
    return [frame["data"] for frame in parse_frames(answer.text)]


def test_a_dropped_socket_leaves_its_response_running_and_resumable_over_sse() -> None:
    engine = ScriptedEngine(TOKENS, delay_s=0.02)
    with TestClient(create_app(Settings(default_max_tokens=200), engine)) as client:
        response_id = _drop_after(client, 5)
        rest = _rest(client, response_id, 4)
        assert [e["sequence_number"] for e in rest] == list(range(5, 5 + len(rest)))
        assert rest[-1]["type"] == "response.completed"
        assert rest[-1]["response"]["output"][0]["content"][0]["text"] == "".join(TOKENS)
        assert not engine.aborted
        # It ran detached, stored; cancel and DELETE work as for a background response.
        assert client.get(f"/v1/responses/{response_id}").json()["status"] == "completed"
        assert client.post(f"/v1/responses/{response_id}/cancel").status_code == 200


def test_dropped_on_one_replica_resumed_on_the_other(redis_server: RedisServer) -> None:
    redis_server.flush()
    settings = Settings(redis_url=redis_server.url, default_max_tokens=200)
    engine_a = ScriptedEngine(TOKENS, delay_s=0.03)
    with TestClient(create_app(settings, engine_a)) as a, \
            TestClient(create_app(settings, ScriptedEngine())) as b:
        response_id = _drop_after(a, 4)
        rest = _rest(b, response_id, 3)
        assert rest[0]["sequence_number"] == 4 and rest[-1]["type"] == "response.completed"
        assert not engine_a.aborted


def test_the_socket_closes_1009_on_an_event_over_the_body_limit() -> None:
    settings = Settings(default_max_tokens=200, max_body_bytes=1024)
    with TestClient(create_app(settings, ScriptedEngine())) as client:
        with client.websocket_connect(URL) as ws:
            ws.send_json({**HI, "input": "x" * 2000})
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
    assert closed.value.code == 1009


def test_at_most_16_creates_wait_or_run_on_one_socket() -> None:
    engine = ScriptedEngine(TOKENS, delay_s=0.05)  # the first one runs ~1.5 s
    with TestClient(create_app(Settings(default_max_tokens=200), engine)) as client:
        with client.websocket_connect(URL) as ws:
            for _ in range(18):
                ws.send_json(HI)
            events = [ws.receive_json()]
            while events[-1]["type"] != "error":
                events.append(ws.receive_json())
    assert events[-1]["status"] == 409 and events[-1]["error"]["code"] == "too_many_pending"
