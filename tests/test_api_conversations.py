"""/v1/conversations with a scripted engine, through the official `openai` SDK's
`client.conversations`: conversations are sessions (one store, one history), their items in
OpenAI's shapes, pages, owners, and bad input as 400s that name the field."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine
from tests.sdk_clients import client, engine, sdk
from tests.test_api_auth import ALICE, BOB, KEYS, auth

__all__ = ["client", "engine", "sdk"]  # the SDK tests' fixtures

SSE = {"Accept": "text/event-stream"}
CALL: Any = {"type": "function_call", "call_id": "call_1", "name": "get_weather",
             "arguments": '{"city": "Paris"}'}
OUTPUT: Any = {"type": "function_call_output", "call_id": "call_1", "output": '{"temp": 21}'}


def test_created_with_items_and_metadata_it_is_a_session(client: TestClient,
                                                          sdk: openai.OpenAI) -> None:
    conversation = sdk.conversations.create(
        items=[{"type": "message", "role": "system", "content": "Be brief."},
               {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
               CALL, OUTPUT],
        metadata={"topic": "weather"})
    assert conversation.object == "conversation" and conversation.metadata == {"topic": "weather"}
    assert conversation.id.startswith("ses_") and conversation.created_at > 0
    items = sdk.conversations.items.list(conversation.id, order="asc").data
    assert [i.type for i in items] == ["message", "message", "function_call",
                                       "function_call_output"]
    assert items[0].role == "system" and items[1].content[0].text == "Weather?"  # type: ignore
    assert items[2].call_id == "call_1" and items[2].arguments == '{"city": "Paris"}'  # type: ignore
    assert items[3].output == '{"temp": 21}'  # type: ignore[union-attr]
    # The same object, read as a session (and listed, as the page's sidebar lists them).
    session = client.get(f"/v1/sessions/{conversation.id}").json()
    assert [m["role"] for m in session["messages"]] == ["system", "user", "assistant", "tool"]
    assert session["messages"][2]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert conversation.id in [s["id"] for s in client.get("/v1/sessions").json()["data"]]
    # `conv_` with the same hex names it too.
    alias = "conv_" + conversation.id.removeprefix("ses_")
    assert sdk.conversations.retrieve(alias).id == conversation.id


def test_items_page_both_ways(sdk: openai.OpenAI) -> None:
    conversation = sdk.conversations.create(
        items=[{"role": "user", "content": f"turn {i}"} for i in range(5)])
    newest_first = sdk.conversations.items.list(conversation.id, limit=2)
    texts = [i.content[0].text for i in newest_first.data]  # type: ignore[union-attr]
    assert texts == ["turn 4", "turn 3"] and newest_first.has_more
    assert newest_first.first_id == newest_first.data[0].id
    # The SDK's pager follows `last_id` as `after`.
    every = [i.content[0].text for i in sdk.conversations.items.list(  # type: ignore[union-attr]
        conversation.id, limit=2, order="asc")]
    assert every == [f"turn {i}" for i in range(5)]
    last = sdk.conversations.items.list(conversation.id, after=newest_first.last_id, limit=10)
    assert len(last.data) == 3 and not last.has_more


def test_items_added_retrieved_and_deleted(sdk: openai.OpenAI) -> None:
    conversation = sdk.conversations.create()
    added = sdk.conversations.items.create(conversation.id, items=[
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}])
    assert [i.type for i in added.data] == ["message", "message"]
    first, second = added.data
    got = sdk.conversations.items.retrieve(second.id, conversation_id=conversation.id)
    assert got.role == "assistant" and got.content[0].type == "output_text"  # type: ignore
    assert got.content[0].text == "Hello!"  # type: ignore[union-attr]
    after = sdk.conversations.items.delete(first.id, conversation_id=conversation.id)
    assert after.id == conversation.id
    left = sdk.conversations.items.list(conversation.id).data
    assert [i.id for i in left] == [second.id]
    with pytest.raises(openai.NotFoundError):
        sdk.conversations.items.retrieve(first.id, conversation_id=conversation.id)


def test_metadata_updated_and_the_conversation_deleted_with_its_session(
        client: TestClient, sdk: openai.OpenAI) -> None:
    conversation = sdk.conversations.create(metadata={"a": "1"})
    updated = sdk.conversations.update(conversation.id, metadata={"b": "2"})
    assert updated.metadata == {"b": "2"}
    assert sdk.conversations.retrieve(conversation.id).metadata == {"b": "2"}
    deleted = sdk.conversations.delete(conversation.id)
    assert deleted.deleted and deleted.object == "conversation.deleted"
    assert client.get(f"/v1/sessions/{conversation.id}").status_code == 404
    with pytest.raises(openai.NotFoundError) as error:
        sdk.conversations.retrieve(conversation.id)
    assert error.value.body["code"] == "conversation_not_found"  # type: ignore[index]


def test_a_session_reads_as_a_conversation(client: TestClient, sdk: openai.OpenAI) -> None:
    sid = client.post("/v1/sessions", json={"title": "t"}).json()["id"]
    client.post(f"/v1/sessions/{sid}/messages", json={"content": "Hi"}, headers=SSE)
    items = sdk.conversations.items.list(sid, order="asc").data
    assert [(i.type, i.role) for i in items] == [  # type: ignore[union-attr]
        ("message", "user"), ("message", "assistant")]
    assert items[1].content[0].text == "Hello there!"  # type: ignore[union-attr]
    assert items[1].status == "completed"  # type: ignore[union-attr]
    assert sdk.conversations.retrieve(sid).metadata == {}


def said(engine: ScriptedEngine) -> list[tuple[str, str]]:
    """The last prompt's turns, as the engine was given them."""
    return [(turn.role, turn.content) for turn in engine.rendered[-1][0]]


def test_a_response_in_a_conversation_goes_on_from_it_and_is_appended(
        engine: ScriptedEngine, sdk: openai.OpenAI) -> None:
    conversation = sdk.conversations.create(items=[{"role": "user", "content": "I am Ada."},
                                                   {"role": "assistant", "content": "Hi Ada."}])
    first = sdk.responses.create(model="scripted", input="Who am I?",
                                 conversation=conversation.id, instructions="Be brief.")
    assert first.conversation is not None and first.conversation.id == conversation.id
    assert said(engine) == [("system", "Be brief."), ("user", "I am Ada."),
                            ("assistant", "Hi Ada."), ("user", "Who am I?")]
    items = sdk.conversations.items.list(conversation.id, order="asc").data
    assert [i.content[0].text for i in items] == [  # type: ignore[union-attr]
        "I am Ada.", "Hi Ada.", "Who am I?", "Hello there!"]
    assert items[-1].id == first.output[0].id  # the output item, as the response has it
    # Streamed, and named as {"id": ...}: the same; `instructions` are not kept.
    events = list(sdk.responses.create(model="scripted", input="Again?", stream=True,
                                       conversation={"id": conversation.id}))
    assert events[-1].type == "response.completed"
    assert said(engine) == [("user", "I am Ada."), ("assistant", "Hi Ada."),
                                ("user", "Who am I?"), ("assistant", "Hello there!"),
                                ("user", "Again?")]
    assert len(sdk.conversations.items.list(conversation.id).data) == 6


def test_a_session_is_continued_with_conversation_and_then_by_its_own_endpoint(
        client: TestClient, engine: ScriptedEngine, sdk: openai.OpenAI) -> None:
    sid = client.post("/v1/sessions", json={"system": "You are terse."}).json()["id"]
    client.post(f"/v1/sessions/{sid}/messages", json={"content": "Hi"}, headers=SSE)
    sdk.responses.create(model="scripted", conversation=sid, input=[
        {"role": "user", "content": "Weather?"}, CALL, OUTPUT])
    assert said(engine)[:2] == [("system", "You are terse."), ("user", "Hi")]
    client.post(f"/v1/sessions/{sid}/messages", json={"content": "Thanks"}, headers=SSE)
    turns = engine.rendered[-1][0]
    assert [t.role for t in turns] == ["system", "user", "assistant", "user", "assistant",
                                       "tool", "assistant", "user"]
    assert turns[4].extra["tool_calls"][0]["function"]["name"] == "get_weather"
    assert turns[5].extra == {"tool_call_id": "call_1"}
    messages = client.get(f"/v1/sessions/{sid}").json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "tool",
                                             "assistant", "user", "assistant"]


def test_conversation_errors_are_openais(client: TestClient) -> None:
    conversation = client.post("/v1/conversations", json={}).json()["id"]
    chained = client.post("/v1/responses", json={"model": "scripted", "input": "x"}).json()
    both = client.post("/v1/responses", json={
        "model": "scripted", "input": "x", "conversation": conversation,
        "previous_response_id": chained["id"]})
    assert both.status_code == 400 and both.json()["error"]["param"] == "conversation"
    unknown = client.post("/v1/responses", json={
        "model": "scripted", "input": "x", "conversation": "conv_nope"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "conversation_not_found"
    assert unknown.json()["error"]["param"] == "conversation"
    bad = client.post("/v1/responses", json={"model": "scripted", "input": "x",
                                             "conversation": {"id": 1}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "conversation"


def test_bad_input_names_the_field(client: TestClient) -> None:
    conversation = client.post("/v1/conversations", json={}).json()["id"]
    cases = [
        ("/v1/conversations", {"items": [{"type": "web_search_call"}]}, "items[0]"),
        ("/v1/conversations", {"items": [{"role": "user", "content": "x"}] * 21}, "items"),
        ("/v1/conversations", {"metadata": {"k": "v" * 513}}, "metadata.k"),
        (f"/v1/conversations/{conversation}/items", {"items": []}, "items"),
        (f"/v1/conversations/{conversation}/items",
         {"items": [{"type": "function_call", "name": "f"}]}, "items[0]"),
    ]
    for path, body, param in cases:
        response = client.post(path, json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["param"] == param, response.text
    for query, param in (("order=up", "order"), ("limit=0", "limit"), ("after=nope", "after")):
        response = client.get(f"/v1/conversations/{conversation}/items?{query}")
        assert response.status_code == 400 and response.json()["error"]["param"] == param


def test_another_keys_conversation_is_not_found() -> None:
    with TestClient(create_app(Settings(api_keys=KEYS), ScriptedEngine())) as client:
        made = client.post("/v1/conversations", json={"items": [
            {"role": "user", "content": "mine"}]}, headers=auth(ALICE)).json()
        item = client.get(f"/v1/conversations/{made['id']}/items",
                          headers=auth(ALICE)).json()["data"][0]["id"]
        for method, path in (("GET", ""), ("DELETE", ""), ("GET", "/items"),
                             ("GET", f"/items/{item}"), ("DELETE", f"/items/{item}")):
            response = client.request(method, f"/v1/conversations/{made['id']}{path}",
                                      headers=auth(BOB))
            assert response.status_code == 404, (method, path)
        assert client.get(f"/v1/conversations/{made['id']}", headers=auth(ALICE)).status_code \
            == 200
        assert made["id"] in [s["id"] for s in client.get(
            "/v1/sessions", headers=auth(ALICE)).json()["data"]]
        assert client.get("/v1/sessions", headers=auth(BOB)).json()["data"] == []
