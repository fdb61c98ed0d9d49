"""Conversations on two replicas sharing one real Redis (sessions in app/sessions/redis.py),
each with a scripted engine: made on one, continued and changed through the other; and the
rules sessions keep: the per-key quota, and no item changes under a reply in flight."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine
from tests.redis_server import RedisServer
from tests.sdk_clients import sdk_for
from tests.test_api_auth import ALICE, KEYS, auth


@pytest.fixture
def replicas(redis_server: RedisServer) -> Iterator[tuple[TestClient, TestClient]]:
    redis_server.flush()
    settings = Settings(redis_url=redis_server.url, default_max_tokens=200)
    with TestClient(create_app(settings, ScriptedEngine(["Hi", "!"]))) as a, \
            TestClient(create_app(settings, ScriptedEngine(["Yes", "."]))) as b:
        yield a, b


def test_made_on_one_replica_continued_and_read_through_the_other(replicas) -> None:  # type: ignore[no-untyped-def]
    a, b = replicas
    sdk_a, sdk_b = sdk_for(a), sdk_for(b)
    conversation = sdk_a.conversations.create(items=[{"role": "user", "content": "Hello"}],
                                              metadata={"k": "v"})
    assert sdk_b.conversations.retrieve(conversation.id).metadata == {"k": "v"}
    sdk_b.responses.create(model="scripted", input="Sure?", conversation=conversation.id)
    texts = [i.content[0].text for i in  # type: ignore[union-attr]
             sdk_a.conversations.items.list(conversation.id, order="asc")]
    assert texts == ["Hello", "Sure?", "Yes."]
    first = sdk_a.conversations.items.list(conversation.id, order="asc").data[0]
    sdk_b.conversations.items.delete(first.id, conversation_id=conversation.id)
    sdk_a.conversations.update(conversation.id, metadata=None)
    left = sdk_b.conversations.items.list(conversation.id, order="asc").data
    assert [i.content[0].text for i in left] == ["Sure?", "Yes."]  # type: ignore[union-attr]
    assert sdk_b.conversations.retrieve(conversation.id).metadata == {}
    # The session's own endpoint goes on from the same history, on the other replica.
    a.post(f"/v1/sessions/{conversation.id}/messages", json={"content": "Again"},
           headers={"Accept": "text/event-stream"})
    assert len(sdk_b.conversations.items.list(conversation.id).data) == 4


def test_the_session_quota_counts_conversations() -> None:
    settings = Settings(api_keys=KEYS, max_sessions_per_key=1)
    with TestClient(create_app(settings, ScriptedEngine())) as client:
        assert client.post("/v1/conversations", json={}, headers=auth(ALICE)).status_code == 200
        refused = client.post("/v1/conversations", json={}, headers=auth(ALICE))
        assert refused.status_code == 429 and "retry-after" in refused.headers
        assert refused.json()["error"]["code"] == "too_many_sessions"
        assert client.post("/v1/sessions", headers=auth(ALICE)).status_code == 429


def test_items_do_not_change_under_a_reply_in_flight() -> None:
    engine = ScriptedEngine([f"w{i} " for i in range(200)], delay_s=0.05)
    with TestClient(create_app(Settings(default_max_tokens=300), engine)) as client:
        sid = client.post("/v1/conversations", json={}).json()["id"]
        reply = client.post(f"/v1/sessions/{sid}/messages", json={"content": "Go"}).json()
        items = client.get(f"/v1/conversations/{sid}/items").json()["data"]
        assert items[0]["status"] == "in_progress" and items[1]["role"] == "user"
        for response in (
                client.post(f"/v1/conversations/{sid}/items",
                            json={"items": [{"role": "user", "content": "x"}]}),
                client.delete(f"/v1/conversations/{sid}/items/{items[1]['id']}"),
                client.post("/v1/responses", json={"model": "scripted", "input": "x",
                                                   "conversation": sid})):
            assert response.status_code == 409, response.text
            assert response.json()["error"]["code"] == "reply_in_flight"
        client.post(f"/v1/sessions/{sid}/messages/{reply['message_id']}/cancel")
        added = client.post(f"/v1/conversations/{sid}/items",
                            json={"items": [{"role": "user", "content": "x"}]})
        assert added.status_code == 200
