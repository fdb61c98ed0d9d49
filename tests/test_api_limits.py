"""Per-key limits over HTTP, WebSocket and the OpenAI API (app/limits, wired in app/api/http/auth.py,
app/chat.py, app/completions.py): the excess gets a quick 429 with Retry-After (4429 on a
WebSocket), the rest completes; with Redis, replicas share one bucket and one count of streams."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine
from tests.redis_server import RedisServer

KEY = {"Authorization": "Bearer sk-alice-1"}
KEYS = "alice:sk-alice-1:chat,bob:sk-bob-1:chat"
SSE = {"Accept": "text/event-stream", **KEY}
CHAT = {"model": "scripted", "messages": [{"role": "user", "content": "hi"}]}


def app_with(engine: ScriptedEngine | None = None, **settings: Any) -> TestClient:
    return TestClient(create_app(Settings(api_keys=KEYS, **settings), engine or ScriptedEngine()))


def assert_429(response: Any, code: str) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == code
    assert int(response.headers["retry-after"]) >= 1


def test_requests_per_minute_over_every_transport() -> None:
    with app_with(rate_limit_rpm=6) as client:
        sid = client.post("/v1/sessions", headers=KEY).json()["id"]  # 1
        assert client.post(f"/v1/sessions/{sid}/messages", json={"content": "a"},
                           headers=SSE).status_code == 200  # 2
        assert client.post("/v1/chat/completions", json=CHAT, headers=KEY).status_code == 200  # 3
        with client.websocket_connect(f"/v1/sessions/{sid}/ws", headers=KEY) as ws:  # 4
            ws.send_json({"type": "message", "content": "b"})  # 5
            while ws.receive_json()["type"] != "done":
                pass
            ws.send_json({"type": "ping"})  # a ping is not a request
            assert ws.receive_json() == {"type": "pong"}
            ws.send_json({"type": "message", "content": "c"})  # 6
            while ws.receive_json()["type"] != "done":
                pass
            ws.send_json({"type": "message", "content": "d"})  # over
            error = ws.receive_json()
            assert (error["code"], error["status"]) == ("rate_limited", 4429)
        for _ in range(20):  # bounded: the excess is refused, on every route, each with its wait
            assert_429(client.get("/v1/models", headers=KEY), "rate_limited")
        assert_429(client.post("/v1/chat/completions", json=CHAT, headers=KEY), "rate_limited")
        # Another key has its own bucket.
        assert client.get("/v1/models", headers={"Authorization": "Bearer sk-bob-1"}).status_code == 200


@pytest.fixture
def two_replicas(redis_server: RedisServer) -> Iterator[tuple[TestClient, TestClient]]:
    redis_server.flush()
    with app_with(rate_limit_rpm=10, redis_url=redis_server.url) as a, \
            app_with(rate_limit_rpm=10, redis_url=redis_server.url) as b:
        yield a, b


def test_replicas_share_one_bucket_through_redis(two_replicas: tuple[TestClient, TestClient]) -> None:
    a, b = two_replicas
    statuses = [(a if i % 2 else b).get("/v1/models", headers=KEY).status_code for i in range(30)]
    assert statuses.count(200) == 10 and statuses.count(429) == 20
    assert statuses[:10] == [200] * 10


def test_concurrent_streams_per_key() -> None:
    engine = ScriptedEngine(tokens=["w"] * 100, delay_s=0.01)
    with app_with(engine, max_streams_per_key=1) as client:
        first, second = (client.post("/v1/sessions", headers=KEY).json()["id"] for _ in range(2))
        started = client.post(f"/v1/sessions/{first}/messages", json={"content": "a"},
                              headers=KEY)
        assert started.status_code == 202
        assert_429(client.post(f"/v1/sessions/{second}/messages", json={"content": "b"},
                               headers=KEY), "too_many_streams")
        assert_429(client.post("/v1/chat/completions", json=CHAT, headers=KEY), "too_many_streams")
        other = client.post("/v1/sessions", headers={"Authorization": "Bearer sk-bob-1"}).json()
        assert client.post(f"/v1/sessions/{other['id']}/messages", json={"content": "c"},
                           headers={"Authorization": "Bearer sk-bob-1"}).status_code == 202
        # Its reply read to the end: it ended, and with it the key's count of its stream.
        mid = started.json()["message_id"]
        ended = client.get(f"/v1/sessions/{first}/messages/{mid}/stream", headers=KEY)
        assert "event: done" in ended.text
        assert client.post(f"/v1/sessions/{second}/messages", json={"content": "b"},
                           headers=KEY).status_code == 202  # admitted again once one ended


def test_concurrent_streams_per_key_across_replicas(redis_server: RedisServer) -> None:
    redis_server.flush()
    slow = ScriptedEngine(tokens=["w"] * 100, delay_s=0.01)
    with app_with(slow, max_streams_per_key=1, redis_url=redis_server.url) as a, \
            app_with(max_streams_per_key=1, redis_url=redis_server.url) as b:
        first, second = (a.post("/v1/sessions", headers=KEY).json()["id"] for _ in range(2))
        started = a.post(f"/v1/sessions/{first}/messages", json={"content": "a"}, headers=KEY)
        assert started.status_code == 202
        # The other replica counts it: the key's one stream runs.
        assert_429(b.post(f"/v1/sessions/{second}/messages", json={"content": "b"},
                          headers=KEY), "too_many_streams")
        assert_429(b.post("/v1/chat/completions", json=CHAT, headers=KEY), "too_many_streams")
        mid = started.json()["message_id"]
        assert "event: done" in b.get(f"/v1/sessions/{first}/messages/{mid}/stream",
                                      headers=KEY).text
        assert b.post("/v1/chat/completions", json=CHAT, headers=KEY).status_code == 200


def test_generated_tokens_per_minute() -> None:
    with app_with(ScriptedEngine(tokens=["w"] * 30), rate_limit_tpm=20,
                  default_max_tokens=30) as client:
        assert client.post("/v1/chat/completions", json=CHAT, headers=KEY).status_code == 200
        assert_429(client.post("/v1/chat/completions", json=CHAT, headers=KEY),
                   "token_rate_limited")


def test_sessions_per_key() -> None:
    with app_with(max_sessions_per_key=2) as client:
        for _ in range(2):
            assert client.post("/v1/sessions", headers=KEY).status_code == 201
        assert_429(client.post("/v1/sessions", headers=KEY), "too_many_sessions")


def test_message_length_and_reply_length_bounds() -> None:
    with app_with(max_message_chars=10, max_reply_tokens=4) as client:
        sid = client.post("/v1/sessions", headers=KEY).json()["id"]
        long = client.post(f"/v1/sessions/{sid}/messages", json={"content": "x" * 11}, headers=KEY)
        assert long.status_code == 400 and long.json()["error"]["param"] == "content"
        chat = client.post("/v1/chat/completions", headers=KEY, json={
            **CHAT, "messages": [{"role": "user", "content": "x" * 11}]})
        assert chat.status_code == 400
        assert chat.json()["error"]["param"] == "messages[0].content[0].text"
        prompt = client.post("/v1/completions", headers=KEY,
                             json={"model": "scripted", "prompt": "x" * 11})
        assert prompt.status_code == 400 and prompt.json()["error"]["param"] == "prompt"
        too_many = client.post(f"/v1/sessions/{sid}/messages", headers=KEY,
                               json={"content": "x", "params": {"max_tokens": 5}})
        assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "max_tokens"
        # Unset, max_tokens is capped too: the scripted reply (4 tokens) just fits.
        done = client.post(f"/v1/sessions/{sid}/messages", json={"content": "x"}, headers=SSE)
        assert '"finish_reason":"stop"' in done.text


def test_a_reply_stops_at_max_reply_seconds() -> None:
    engine = ScriptedEngine(tokens=["w"] * 200, delay_s=0.01)
    with TestClient(create_app(Settings(max_reply_seconds=0.2), engine)) as client:
        sid = client.post("/v1/sessions").json()["id"]
        reply = client.post(f"/v1/sessions/{sid}/messages", json={"content": "go"},
                            headers={"Accept": "text/event-stream"})
        assert '"finish_reason":"length"' in reply.text
        stored = client.get(f"/v1/sessions/{sid}").json()["messages"][-1]
        assert stored["status"] == "done" and 0 < len(stored["content"]) < 200
        assert engine.aborted  # the engine request was stopped, not left running
        chunks = client.post("/v1/chat/completions", json={**CHAT, "stream": True}).text
        assert '"finish_reason":"length"' in chunks and chunks.endswith("data: [DONE]\n\n")
