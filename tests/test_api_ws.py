"""The session WebSocket (app/api/sessions/ws.py) with a scripted engine: frames, errors that keep the
socket open, close codes, resume."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine
from tests.waiting import until_in_app


def new_session(client: TestClient) -> str:
    return str(client.post("/v1/sessions").json()["id"])


def until_terminal(ws: Any) -> list[dict[str, Any]]:
    frames = []
    while True:
        frame = ws.receive_json()
        frames.append(frame)
        if frame["type"] in ("done", "error") and "message_id" in frame:
            return frames


def test_message_streams_start_tokens_done(client: TestClient) -> None:
    sid = new_session(client)
    with client.websocket_connect(f"/v1/sessions/{sid}/ws") as ws:
        ws.send_json({"type": "message", "content": "Hi"})
        frames = until_terminal(ws)
    assert [f["type"] for f in frames] == ["start", "token", "token", "token", "token", "done"]
    assert [f["seq"] for f in frames] == list(range(6))
    assert len({f["message_id"] for f in frames}) == 1
    assert "".join(f["text"] for f in frames[1:-1]) == "Hello there!"
    assert frames[-1]["usage"]["completion_tokens"] == 4
    assert frames[0]["session_id"] == sid
    stored = client.get(f"/v1/sessions/{sid}").json()["messages"]
    assert stored[-1]["content"] == "Hello there!" and stored[-1]["status"] == "done"


def test_ping_is_answered_between_reply_frames() -> None:
    """A ping sent while a reply streams gets its pong at once, among the reply's frames."""
    engine = ScriptedEngine(tokens=["w"] * 40, delay_s=0.01)
    with TestClient(create_app(Settings(), engine)) as client:
        sid = new_session(client)
        with client.websocket_connect(f"/v1/sessions/{sid}/ws") as ws:
            ws.send_json({"type": "message", "content": "go"})
            assert ws.receive_json()["type"] == "start"
            ws.send_json({"type": "ping"})
            frames = until_terminal(ws)
    pongs = [i for i, f in enumerate(frames) if f == {"type": "pong"}]
    assert len(pongs) == 1 and pongs[0] < len(frames) - 1  # before the reply ended
    assert [f["seq"] for f in frames if "seq" in f] == list(range(1, 42))


@pytest.mark.parametrize(("frame", "code"), [
    ("not json", "bad_frame"),
    ("[1, 2]", "bad_frame"),
    ('{"no": "type"}', "bad_frame"),
    ('{"type": "dance"}', "unknown_type"),
    ('{"type": "message"}', "invalid_request"),
    ('{"type": "message", "content": 3}', "invalid_request"),
    ('{"type": "message", "content": "x", "params": {"temperature": -2}}', "invalid_request"),
    ('{"type": "message", "content": "x", "params": {"bogus": 1}}', "unknown_parameter"),
    ('{"type": "message", "content": "x", "extra": 1}', "unknown_parameter"),
    ('{"type": "message", "content": "x", "params": {"max_tokens": 300}}', "context_length_exceeded"),
    ('{"type": "resume", "message_id": "m", "after": -2}', "invalid_request"),
    ('{"type": "resume", "message_id": 5}', "invalid_request"),
    ('{"type": "resume", "message_id": "msg_nope"}', "message_not_found"),
    ('{"type": "cancel"}', "nothing_to_cancel"),
])
def test_bad_frames_get_an_error_frame_and_the_socket_stays_open(client: TestClient, frame: str,
                                                                 code: str) -> None:
    sid = new_session(client)
    with client.websocket_connect(f"/v1/sessions/{sid}/ws") as ws:
        ws.send_text(frame)
        error = ws.receive_json()
        assert error["type"] == "error" and error["code"] == code and error["message"]
        assert error["status"] == (4404 if code == "message_not_found" else 4400)
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}


def test_a_message_frame_with_replaces_regenerates_in_place(client: TestClient,
                                                           engine: ScriptedEngine) -> None:
    sid = new_session(client)
    with client.websocket_connect(f"/v1/sessions/{sid}/ws") as ws:
        for content in ("first", "second"):
            ws.send_json({"type": "message", "content": content})
            until_terminal(ws)
        old = client.get(f"/v1/sessions/{sid}").json()["messages"]
        ws.send_json({"type": "message", "content": "second, edited", "replaces": old[2]["id"]})
        frames = until_terminal(ws)
        assert frames[-1]["type"] == "done"
        ws.send_json({"type": "message", "content": "x", "replaces": old[1]["id"]})
        error = ws.receive_json()  # a reply's id: refused, and the socket stays open
        assert (error["code"], error["param"], error["status"]) == (
            "invalid_request", "replaces", 4400)
        ws.send_json({"type": "message", "content": "x", "replaces": "msg_nope"})
        error = ws.receive_json()
        assert (error["code"], error["param"], error["status"]) == (
            "message_not_found", "replaces", 4404)
    messages = client.get(f"/v1/sessions/{sid}").json()["messages"]
    assert [m["content"] for m in messages] == [
        "first", "Hello there!", "second, edited", "Hello there!"]
    assert [m["id"] for m in messages[:2]] == [m["id"] for m in old[:2]]
    assert messages[3]["id"] == frames[0]["message_id"] != old[3]["id"]
    prompt = "".join(chr(i) for i in engine.prompts[-1] if i > 3)
    assert prompt.count("second") == 1 and prompt.endswith("second, edited")


def test_second_message_while_in_flight_is_4409() -> None:
    engine = ScriptedEngine(tokens=["w"] * 50, delay_s=0.01)
    with TestClient(create_app(Settings(), engine)) as client:
        sid = new_session(client)
        with client.websocket_connect(f"/v1/sessions/{sid}/ws") as ws:
            ws.send_json({"type": "message", "content": "one"})
            assert ws.receive_json()["type"] == "start"
            ws.send_json({"type": "message", "content": "two"})
            frames = until_terminal(ws)
            errors = [f for f in frames if f["type"] == "error" and "message_id" not in f]
            assert errors and errors[0]["code"] == "reply_in_flight" and errors[0]["status"] == 4409
            assert frames[-1]["type"] == "done"


def test_cancel_frame_stops_the_reply() -> None:
    engine = ScriptedEngine(tokens=["w"] * 500, delay_s=0.01)
    with TestClient(create_app(Settings(), engine)) as client:
        sid = new_session(client)
        with client.websocket_connect(f"/v1/sessions/{sid}/ws") as ws:
            ws.send_json({"type": "message", "content": "go"})
            assert ws.receive_json()["type"] == "start"
            ws.receive_json()
            ws.send_json({"type": "cancel"})
            frames = until_terminal(ws)
        assert frames[-1]["type"] == "done" and frames[-1]["finish_reason"] == "cancelled"
        assert engine.aborted


def test_resume_after_reconnect_gets_exactly_the_missed_events() -> None:
    engine = ScriptedEngine(tokens=[f"t{i} " for i in range(40)], delay_s=0.01)
    with TestClient(create_app(Settings(orphan_grace_s=5), engine)) as client:
        sid = new_session(client)
        with client.websocket_connect(f"/v1/sessions/{sid}/ws") as ws:
            ws.send_json({"type": "message", "content": "count"})
            first = [ws.receive_json() for _ in range(5)]
        message_id, last_seq = first[0]["message_id"], first[-1]["seq"]
        with client.websocket_connect(f"/v1/sessions/{sid}/ws") as ws:
            ws.send_json({"type": "resume", "message_id": message_id, "after": last_seq})
            rest = until_terminal(ws)
        assert [f["type"] for f in first[:2]] == ["start", "prefill"]
        assert "seq" not in first[1]  # progress is not numbered
        seqs = [f["seq"] for f in first + rest if "seq" in f]
        assert seqs == list(range(len(seqs)))  # in order, nothing missing, no duplicates
        text = "".join(f.get("text", "") for f in first + rest if f["type"] == "token")
        assert text == "".join(f"t{i} " for i in range(40))
        assert rest[-1]["type"] == "done" and rest[-1]["finish_reason"] == "stop"


def test_resume_with_a_message_of_another_session_is_refused(client: TestClient) -> None:
    other = new_session(client)
    with client.websocket_connect(f"/v1/sessions/{other}/ws") as ws:
        ws.send_json({"type": "message", "content": "mine"})
        foreign_id = until_terminal(ws)[0]["message_id"]
    sid = new_session(client)
    with client.websocket_connect(f"/v1/sessions/{sid}/ws") as ws:
        ws.send_json({"type": "resume", "message_id": foreign_id, "after": -1})
        error = ws.receive_json()
        assert error["type"] == "error" and error["code"] == "message_not_found"
        assert error["status"] == 4404


def test_unknown_session_closes_4404(client: TestClient) -> None:
    with client.websocket_connect("/v1/sessions/ses_nope/ws") as ws, \
            pytest.raises(WebSocketDisconnect) as info:
        ws.receive_json()
    assert info.value.code == 4404


def test_oversize_frame_closes_1009() -> None:
    with TestClient(create_app(Settings(max_body_bytes=2048), ScriptedEngine())) as client:
        sid = new_session(client)
        with client.websocket_connect(f"/v1/sessions/{sid}/ws") as ws:
            ws.send_text('{"type": "message", "content": "' + "x" * 5000 + '"}')
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_json()
        assert info.value.code == 1009


def test_leaving_the_socket_orphans_the_reply_then_aborts() -> None:
    engine = ScriptedEngine(tokens=["w"] * 2000, delay_s=0.005)
    with TestClient(create_app(Settings(orphan_grace_s=0.2), engine)) as client:
        sid = new_session(client)
        with client.websocket_connect(f"/v1/sessions/{sid}/ws") as ws:
            ws.send_json({"type": "message", "content": "go"})
            ws.receive_json()
            ws.receive_json()
        # The grace elapses, then the reply is aborted and stored.
        replies = client.app_state["services"].chat.replies
        until_in_app(client, lambda: not replies.all())
        assert not engine.running and engine.aborted
        assert client.get(f"/v1/sessions/{sid}").json()["messages"][-1]["status"] == "cancelled"

