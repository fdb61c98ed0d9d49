"""The sessions API over HTTP (app/api/sessions/sessions.py) with a scripted engine: event order, bad
input, disconnects."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from app.admission import BACKGROUND_PRIORITY
from app.main import create_app
from app.settings import Settings
from tests.asgi import LeavingClient
from tests.conftest import Start
from tests.fakes import ScriptedEngine
from tests.sse_parse import check_grammar, parse_frames
from tests.waiting import until

SSE = {"Accept": "text/event-stream"}


def new_session(client: TestClient, **body: Any) -> str:
    response = client.post("/v1/sessions", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["message"] and "Traceback" not in error["message"]
    if code is not None:
        assert error["code"] == code
    return dict(error)


def test_sse_reply_streams_start_tokens_done(client: TestClient) -> None:
    sid = new_session(client, system="Be brief.")
    response = client.post(f"/v1/sessions/{sid}/messages", json={"content": "Hi"}, headers=SSE)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    events = check_grammar(parse_frames(response.text))
    start, done = events[0]["data"], events[-1]["data"]
    assert start["session_id"] == sid and start["model"] == "scripted"
    assert "".join(e["data"]["text"] for e in events[1:-1]) == "Hello there!"
    assert done["finish_reason"] == "stop"
    assert done["usage"]["completion_tokens"] == sum(e["data"]["n"] for e in events[1:-1]) == 4
    assert set(done["usage"]) == {"prompt_tokens", "completion_tokens", "cached_tokens"}
    assert set(done["timings"]) == {"queue_ms", "ttft_ms", "total_ms", "tokens_per_s"}

    stored = client.get(f"/v1/sessions/{sid}").json()
    assert [(m["role"], m["status"]) for m in stored["messages"]] == [
        ("user", "done"), ("assistant", "done")]
    assert stored["messages"][1]["content"] == "Hello there!"
    assert stored["messages"][1]["usage"] == done["usage"]


def test_history_is_sent_to_the_engine(client: TestClient, engine: ScriptedEngine) -> None:
    sid = new_session(client, system="S")
    client.post(f"/v1/sessions/{sid}/messages", json={"content": "one"}, headers=SSE)
    client.post(f"/v1/sessions/{sid}/messages", json={"content": "two"}, headers=SSE)
    turns = [p for p, priority in zip(engine.prompts, engine.priorities, strict=True)
             if priority != BACKGROUND_PRIORITY]  # the next prefix may be warmed between them
    first, second = turns
    assert second[: len(first)] == first  # the earlier turns render identically: prefix cache


def test_session_and_message_params_reach_the_engine(client: TestClient,
                                                     engine: ScriptedEngine) -> None:
    sid = new_session(client, params={"temperature": 0.1, "max_tokens": 2})
    response = client.post(f"/v1/sessions/{sid}/messages",
                           json={"content": "x", "params": {"temperature": 0.5}}, headers=SSE)
    events = check_grammar(parse_frames(response.text))
    assert events[-1]["data"]["finish_reason"] == "length"
    assert (engine.params[0].temperature, engine.params[0].max_tokens) == (0.5, 2)


def test_202_then_status_and_stream_replay(client: TestClient) -> None:
    sid = new_session(client)
    response = client.post(f"/v1/sessions/{sid}/messages", json={"content": "Hi"})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    replay = client.get(body["stream_url"])
    events = check_grammar(parse_frames(replay.text))
    assert events[-1]["event"] == "done"
    status = client.get(body["status_url"]).json()
    assert status["status"] == "done" and status["content"] == "Hello there!"
    resumed = client.get(body["stream_url"], headers={"Last-Event-ID": "2"})
    assert [int(f["id"]) for f in parse_frames(resumed.text)] == list(range(3, len(events)))


def test_second_message_while_in_flight_is_409() -> None:
    engine = ScriptedEngine(delay_s=0.05)
    with TestClient(create_app(Settings(), engine)) as client:
        sid = new_session(client)
        assert client.post(f"/v1/sessions/{sid}/messages", json={"content": "a"}).status_code == 202
        second = client.post(f"/v1/sessions/{sid}/messages", json={"content": "b"})
        assert_error(second, 409, "reply_in_flight")


def test_cancel_keeps_partial_text() -> None:
    engine = ScriptedEngine(tokens=["w"] * 200, delay_s=0.01)
    with TestClient(create_app(Settings(), engine)) as client:
        sid = new_session(client)
        mid = client.post(f"/v1/sessions/{sid}/messages", json={"content": "a"}).json()["message_id"]
        with client.stream("GET", f"/v1/sessions/{sid}/messages/{mid}/stream") as stream:
            for line in stream.iter_lines():
                if line.startswith("event: token"):
                    break
        cancelled = client.post(f"/v1/sessions/{sid}/messages/{mid}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert 0 < len(cancelled.json()["content"]) < 200
        assert mid in engine.aborted
        events = check_grammar(parse_frames(client.get(
            f"/v1/sessions/{sid}/messages/{mid}/stream").text))
        assert events[-1]["data"]["finish_reason"] == "cancelled"


def test_delete_session_aborts_its_reply() -> None:
    engine = ScriptedEngine(tokens=["w"] * 200, delay_s=0.01)
    with TestClient(create_app(Settings(), engine)) as client:
        sid = new_session(client)
        mid = client.post(f"/v1/sessions/{sid}/messages", json={"content": "a"}).json()["message_id"]
        assert client.delete(f"/v1/sessions/{sid}").status_code == 204
        assert mid in engine.aborted
        assert_error(client.get(f"/v1/sessions/{sid}"), 404, "session_not_found")


def test_list_sessions_newest_first(client: TestClient) -> None:
    first, second = new_session(client, title="a"), new_session(client, title="b")
    ids = [s["id"] for s in client.get("/v1/sessions").json()["data"]]
    assert ids[:2] == [second, first]


# -- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "status", "code"), [
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400,
     "invalid_request"),
    ({"json": {}}, 400, "invalid_request"),
    ({"json": {"content": 42}}, 400, "invalid_request"),
    ({"json": {"content": ""}}, 400, "invalid_request"),
    ({"json": ["content"]}, 400, "invalid_request"),
    ({"json": {"content": "x", "params": {"bogus": 1}}}, 400, "unknown_parameter"),
    ({"json": {"content": "x", "params": {"temperature": -1}}}, 400, "invalid_request"),
    ({"json": {"content": "x", "params": {"max_tokens": 0}}}, 400, "invalid_request"),
    ({"json": {"content": "x", "extra": 1}}, 400, "unknown_parameter"),
    ({"json": {"content": "   "}}, 400, "invalid_request"),
    ({"json": {"content": "x", "params": {"max_tokens": True}}}, 400, "invalid_request"),
    ({"json": {"content": "x", "params": {"max_tokens": 300}}}, 400, "context_length_exceeded"),
    ({"content": b'{"content": "x"}', "headers": {"content-type": "text/plain"}}, 415,
     "unsupported_media_type"),
    ({"content": b"content=x", "headers": {"content-type": "application/x-www-form-urlencoded"}},
     415, "unsupported_media_type"),
    ({"json": {"content": "x" * 600}}, 400, "context_length_exceeded"),
])
def test_bad_message_input(client: TestClient, kwargs: dict[str, Any], status: int,
                           code: str) -> None:
    sid = new_session(client)
    for headers in ({}, SSE):  # the same answer whether or not the client wants a stream
        request = {**kwargs, "headers": {**kwargs.get("headers", {}), **headers}}
        assert_error(client.post(f"/v1/sessions/{sid}/messages", **request), status, code)


def test_param_errors_name_the_parameter(client: TestClient) -> None:
    sid = new_session(client)
    error = assert_error(client.post(f"/v1/sessions/{sid}/messages",
                                     json={"content": "x", "params": {"temperature": -1}}), 400)
    assert error["param"] == "params.temperature"
    unknown = assert_error(client.post(f"/v1/sessions/{sid}/messages",
                                       json={"content": "x", "params": {"bogus": 1}}), 400)
    assert unknown["param"] == "params.bogus" and "temperature" in unknown["message"]


def test_curl_style_form_labelled_json_is_accepted(client: TestClient) -> None:
    sid = new_session(client)
    response = client.post(f"/v1/sessions/{sid}/messages", content=b'{"content":"Hi"}',
                           headers={"content-type": "application/x-www-form-urlencoded", **SSE})
    assert response.status_code == 200


def test_prompt_too_long_says_the_numbers(client: TestClient) -> None:
    sid = new_session(client)
    error = assert_error(client.post(f"/v1/sessions/{sid}/messages", json={"content": "x" * 600}),
                         400, "context_length_exceeded")
    assert "256" in error["message"] and error["param"] == "content"
    too_many = assert_error(client.post(f"/v1/sessions/{sid}/messages", json={
        "content": "x", "params": {"max_tokens": 300}}), 400, "context_length_exceeded")
    assert too_many["param"] == "max_tokens" and "300" in too_many["message"]


def test_unknown_session_and_message_are_404(client: TestClient) -> None:
    assert_error(client.post("/v1/sessions/nope/messages", json={"content": "x"}, headers=SSE),
                 404, "session_not_found")
    assert_error(client.get("/v1/sessions/nope"), 404, "session_not_found")
    sid = new_session(client)
    assert_error(client.get(f"/v1/sessions/{sid}/messages/nope"), 404, "message_not_found")
    assert_error(client.get(f"/v1/sessions/{sid}/messages/nope/stream"), 404)
    assert_error(client.get("/no/such/route"), 404)


def test_bad_session_bodies(client: TestClient) -> None:
    assert_error(client.post("/v1/sessions", json={"system": 5}), 400)
    assert_error(client.post("/v1/sessions", json={"params": {"top_k": "x"}}), 400)
    assert_error(client.post("/v1/sessions", json={"colour": "red"}), 400)
    assert_error(client.post("/v1/sessions", content=b"[", headers={"content-type":
                                                                    "application/json"}), 400)
    assert client.post("/v1/sessions").status_code == 201  # an empty body is an empty object


def test_oversized_body_is_413() -> None:
    with TestClient(create_app(Settings(max_body_bytes=2048), ScriptedEngine())) as client:
        assert_error(client.post("/v1/sessions", json={"system": "x" * 5000}), 413)


def test_not_ready_is_503_with_retry_after() -> None:
    class SlowStart(ScriptedEngine):
        async def start(self) -> None:
            await asyncio.Event().wait()  # loads for ever

    with TestClient(create_app(Settings(), SlowStart(ready=False))) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.headers["retry-after"]
        sid = new_session(client)
        response = client.post(f"/v1/sessions/{sid}/messages", json={"content": "x"})
        assert_error(response, 503, "not_ready")
        assert response.headers["retry-after"]


def test_ready_and_metrics(client: TestClient) -> None:
    assert client.get("/ready").json()["status"] == "ready"
    sid = new_session(client)
    client.post(f"/v1/sessions/{sid}/messages", json={"content": "x"}, headers=SSE)
    text = client.get("/metrics").text
    for name in ("streamchat_time_to_first_token_seconds", "streamchat_inter_token_latency_seconds",
                 "streamchat_request_duration_seconds", "streamchat_queue_time_seconds",
                 "streamchat_active_streams", "streamchat_generated_tokens_total",
                 "streamchat_prompt_tokens_total", "streamchat_cached_prompt_tokens_total",
                 "streamchat_requests_total", "streamchat_sessions",
                 "streamchat_engine_running_requests", "streamchat_engine_waiting_requests",
                 "streamchat_engine_kv_cache_usage_ratio"):
        assert name in text, name
    assert 'streamchat_requests_total{outcome="done",transport="sse"}' in text


# -- disconnects --------------------------------------------------------------------------

async def test_client_disconnect_aborts_the_engine_request_after_grace(running: Start) -> None:
    """Feed the app an http.disconnect mid-stream; the engine must see the abort."""
    engine = ScriptedEngine(tokens=["w"] * 1000, delay_s=0.005)
    app = await running(Settings(orphan_grace_s=0.1), engine)
    sid = (await app.services.chat.create_session()).id

    client = LeavingClient(b'{"content": "go"}')
    scope = app.scope("POST", f"/v1/sessions/{sid}/messages",
                      {"accept": "text/event-stream", "content-type": "application/json"})
    await asyncio.wait_for(app.app(scope, client.receive, client.send), 5)
    assert client.sent[0]["status"] == 200
    assert engine.running, "the reply should outlive its listener for the grace period"
    # The grace elapses, then the reply is aborted and stored.
    await until(lambda: app.services.chat.replies.of_session(sid) is None)
    assert not engine.running and len(engine.aborted) == 1
    message = await app.services.chat.get_message(sid, engine.aborted[0])
    assert message.status == "cancelled" and message.content.startswith("w")


def test_core_does_not_import_starlette() -> None:
    code = ("import sys, app.chat, app.completions, app.engine.vllm, app.sessions.memory, "
            "app.sessions.redis, app.streams.redis, app.replies.replicas, app.lifecycle, "
            "app.admission, app.replies.warmup, app.engine.cpu, app.engine.config, "
            "app.generation, app.responses.run, app.responses.stored, app.backends; "
            "assert 'starlette' not in sys.modules, 'core imports starlette'")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- a session's model, PATCH, and replacing a turn -------------------------------------------

@pytest.fixture
def aliased(engine: ScriptedEngine) -> Iterator[TestClient]:
    settings = Settings(orphan_grace_s=0.2, default_max_tokens=16, model_aliases=("alias",))
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


def test_a_sessions_model_is_shown_and_writes_its_replies(aliased: TestClient) -> None:
    created = aliased.post("/v1/sessions", json={"model": "alias"})
    assert created.status_code == 201 and created.json()["model"] == "alias"
    sid = created.json()["id"]
    plain = new_session(aliased)
    assert aliased.get(f"/v1/sessions/{plain}").json()["model"] == "scripted"  # the base model
    listed = {s["id"]: s["model"] for s in aliased.get("/v1/sessions").json()["data"]}
    assert listed == {sid: "alias", plain: "scripted"}
    events = check_grammar(parse_frames(aliased.post(
        f"/v1/sessions/{sid}/messages", json={"content": "Hi"}, headers=SSE).text))
    assert events[0]["data"]["model"] == "alias"
    session = aliased.get(f"/v1/sessions/{sid}").json()
    assert session["model"] == "alias" and session["messages"][1]["model"] == "alias"


def test_an_unknown_model_is_404(aliased: TestClient) -> None:
    error = assert_error(aliased.post("/v1/sessions", json={"model": "gpt-9"}), 404,
                         "model_not_found")
    assert error["param"] == "model"
    assert aliased.get("/v1/sessions").json()["data"] == []  # nothing created
    sid = new_session(aliased)
    error = assert_error(aliased.patch(f"/v1/sessions/{sid}", json={"model": "gpt-9"}), 404,
                         "model_not_found")
    assert error["param"] == "model"
    assert aliased.get(f"/v1/sessions/{sid}").json()["model"] == "scripted"
    assert_error(aliased.post("/v1/sessions", json={"model": 5}), 400, "invalid_request")


def test_patch_changes_only_the_keys_present(aliased: TestClient) -> None:
    sid = new_session(aliased, title="t", system="S", params={"temperature": 0.1, "top_k": 5})
    renamed = aliased.patch(f"/v1/sessions/{sid}", json={"title": "renamed"})
    assert renamed.status_code == 200
    body = renamed.json()
    assert (body["title"], body["system"], body["params"], body["model"]) == (
        "renamed", "S", {"temperature": 0.1, "top_k": 5}, "scripted")
    assert body == aliased.get(f"/v1/sessions/{sid}").json()  # the same shape as GET
    replaced = aliased.patch(f"/v1/sessions/{sid}", json={"params": {"max_tokens": 2},
                                                           "model": "alias"}).json()
    assert (replaced["params"], replaced["model"], replaced["title"]) == (
        {"max_tokens": 2}, "alias", "renamed")  # params replaced whole
    cleared = aliased.patch(f"/v1/sessions/{sid}", json={
        "title": None, "system": None, "params": {}, "model": None}).json()
    assert (cleared["title"], cleared["system"], cleared["params"], cleared["model"]) == (
        None, None, {}, "scripted")
    assert aliased.patch(f"/v1/sessions/{sid}").json() == cleared  # an empty body changes nothing
    assert [s["title"] for s in aliased.get("/v1/sessions").json()["data"]] == [None]


@pytest.mark.parametrize(("body", "code", "param"), [
    ({"colour": "red"}, "unknown_parameter", "colour"),
    ({"title": "x" * 201}, "invalid_request", "title"),
    ({"title": 5}, "invalid_request", "title"),
    ({"system": "x" * 100_001}, "invalid_request", "system"),
    ({"params": {"temperature": "0.5"}}, "invalid_request", "params.temperature"),
    ({"params": {"bogus": 1}}, "unknown_parameter", "params.bogus"),
    ({"model": ["alias"]}, "invalid_request", "model"),
])
def test_bad_patches_are_400_and_change_nothing(aliased: TestClient, body: dict[str, Any],
                                               code: str, param: str) -> None:
    sid = new_session(aliased, title="t", params={"top_k": 5})
    before = aliased.get(f"/v1/sessions/{sid}").json()
    error = assert_error(aliased.patch(f"/v1/sessions/{sid}", json=body), 400, code)
    assert error["param"] == param
    assert aliased.get(f"/v1/sessions/{sid}").json() == before


def test_patch_of_an_unknown_session_is_404(client: TestClient) -> None:
    assert_error(client.patch("/v1/sessions/ses_nope", json={"title": "x"}), 404,
                 "session_not_found")


def test_patch_while_a_reply_is_in_flight_applies_to_the_next_reply() -> None:
    engine = ScriptedEngine(tokens=["w"] * 20, delay_s=0.01)
    settings = Settings(model_aliases=("alias",), default_max_tokens=16)
    with TestClient(create_app(settings, engine)) as client:
        sid = new_session(client, params={"temperature": 0.1})
        first = client.post(f"/v1/sessions/{sid}/messages", json={"content": "a"}).json()
        patched = client.patch(f"/v1/sessions/{sid}", json={"params": {"temperature": 0.9},
                                                            "model": "alias"})
        assert patched.status_code == 200
        client.get(first["stream_url"])  # until it ends
        assert client.get(first["status_url"]).json()["model"] == "scripted"
        events = check_grammar(parse_frames(client.post(
            f"/v1/sessions/{sid}/messages", json={"content": "b"}, headers=SSE).text))
        assert events[0]["data"]["model"] == "alias"
        assert [p.temperature for p in engine.params if p.max_tokens > 1] == [0.1, 0.9]


def test_replaces_puts_the_new_turn_in_place_of_the_old_ones(client: TestClient,
                                                            engine: ScriptedEngine) -> None:
    sid = new_session(client, system="S")
    for content in ("first question", "second question"):
        client.post(f"/v1/sessions/{sid}/messages", json={"content": content}, headers=SSE)
    old = client.get(f"/v1/sessions/{sid}").json()["messages"]
    response = client.post(f"/v1/sessions/{sid}/messages",
                           json={"content": "edited", "replaces": old[0]["id"]}, headers=SSE)
    events = check_grammar(parse_frames(response.text))
    assert events[-1]["event"] == "done"
    messages = client.get(f"/v1/sessions/{sid}").json()["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "edited"), ("assistant", "Hello there!")]
    assert messages[1]["id"] == events[0]["data"]["message_id"]
    prompt = "".join(chr(i) for i in engine.prompts[-1] if i > 3)
    assert "edited" in prompt and "question" not in prompt and "Hello" not in prompt
    for message in old:  # a removed message's URLs are gone
        base = f"/v1/sessions/{sid}/messages/{message['id']}"
        assert_error(client.get(base), 404, "message_not_found")
        assert_error(client.get(base + "/stream"), 404, "message_not_found")


def test_regenerate_the_last_reply_with_a_202(client: TestClient) -> None:
    sid = new_session(client)
    for content in ("one", "two"):
        client.post(f"/v1/sessions/{sid}/messages", json={"content": content}, headers=SSE)
    old = client.get(f"/v1/sessions/{sid}").json()["messages"]
    response = client.post(f"/v1/sessions/{sid}/messages",
                           json={"content": "two", "replaces": old[2]["id"]})
    assert response.status_code == 202
    client.get(response.json()["stream_url"])
    messages = client.get(f"/v1/sessions/{sid}").json()["messages"]
    assert [m["id"] for m in messages[:2]] == [m["id"] for m in old[:2]]
    assert [m["content"] for m in messages] == ["one", "Hello there!", "two", "Hello there!"]
    assert messages[3]["id"] == response.json()["message_id"] != old[3]["id"]


def test_bad_replaces_are_refused_and_remove_nothing(client: TestClient) -> None:
    sid = new_session(client)
    client.post(f"/v1/sessions/{sid}/messages", json={"content": "one"}, headers=SSE)
    before = client.get(f"/v1/sessions/{sid}").json()
    user, reply = before["messages"]
    url = f"/v1/sessions/{sid}/messages"
    for headers in ({}, SSE):
        error = assert_error(client.post(url, json={"content": "x", "replaces": reply["id"]},
                                         headers=headers), 400, "invalid_request")
        assert error["param"] == "replaces"
        error = assert_error(client.post(url, json={"content": "x", "replaces": "msg_nope"},
                                         headers=headers), 404, "message_not_found")
        assert error["param"] == "replaces"
        assert_error(client.post(url, json={"content": "x" * 600, "replaces": user["id"]},
                                 headers=headers), 400, "context_length_exceeded")
        assert_error(client.post(url, json={"content": "x", "replaces": 5}, headers=headers),
                     400, "invalid_request")
    assert client.get(f"/v1/sessions/{sid}").json() == before


def test_a_replacement_refused_while_a_reply_is_in_flight_removes_nothing() -> None:
    engine = ScriptedEngine(tokens=["w"] * 50, delay_s=0.01)
    with TestClient(create_app(Settings(default_max_tokens=60), engine)) as client:
        sid = new_session(client)
        first = client.post(f"/v1/sessions/{sid}/messages", json={"content": "a"}).json()
        client.get(first["stream_url"])
        user = client.get(f"/v1/sessions/{sid}").json()["messages"][0]
        second = client.post(f"/v1/sessions/{sid}/messages", json={"content": "b"}).json()
        refused = client.post(f"/v1/sessions/{sid}/messages",
                              json={"content": "a2", "replaces": user["id"]})
        assert_error(refused, 409, "reply_in_flight")
        client.get(second["stream_url"])
        messages = client.get(f"/v1/sessions/{sid}").json()["messages"]
        assert [m["content"] for m in messages] == ["a", "w" * 50, "b", "w" * 50]

