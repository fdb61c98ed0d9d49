"""Resumable OpenAI chat completion streams (app/api/openai/resumable.py, app/replies/detached.py)
with a scripted engine: ids, resume after any id, the orphan grace, 404s, owners."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.api.http.sse import EventParser
from app.main import create_app
from app.settings import Settings
from tests.asgi import LeavingClient
from tests.conftest import Start
from tests.fakes import ScriptedEngine
from tests.waiting import until

CHAT = {"model": "scripted", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
RESUMABLE = {"X-Stream-Resumable": "true"}
TOKENS = [f"w{i} " for i in range(12)]


@pytest.fixture
def client() -> Iterator[TestClient]:
    engine = ScriptedEngine(tokens=TOKENS)
    with TestClient(create_app(Settings(orphan_grace_s=0.3), engine)) as test_client:
        yield test_client


def frames(body: str) -> list[str]:
    return [block + "\n\n" for block in body.split("\n\n") if block]


def resume_url(stream_id: str) -> str:
    return f"/v1/chat/completions/streams/{stream_id}"


def head_of(response: Any, events: int) -> str:
    """A resumable stream's first `events` frames, read as a client that then drops it."""
    head = ""
    for line in response.iter_lines():
        head += line + "\n"
        if line.startswith("data: ") and head.count("data: ") == events:
            break
    return head + "\n"


def text_of(body: str) -> str:
    events = [e.data for e in EventParser().feed(body.encode())]
    assert events[-1] == "[DONE]"
    return "".join(json.loads(d)["choices"][0]["delta"].get("content", "")
                   for d in events[:-1] if json.loads(d)["choices"])


def test_a_resumable_stream_has_an_id_and_numbered_chunks(client: TestClient) -> None:
    plain = client.post("/v1/chat/completions", json=CHAT)
    response = client.post("/v1/chat/completions", json=CHAT, headers=RESUMABLE)
    assert response.status_code == 200
    stream_id = response.headers["x-stream-id"]
    parsed = list(EventParser().feed(response.content))
    assert [e.id for e in parsed] == [str(i) for i in range(1, len(parsed) + 1)]
    assert parsed[-1].data == "[DONE]" and all(e.event == "message" for e in parsed)
    assert json.loads(parsed[0].data)["id"] == stream_id
    assert text_of(response.text) == text_of(plain.text) == "".join(TOKENS)
    assert "x-stream-id" not in plain.headers and "id: " not in plain.text


@pytest.mark.parametrize("after", [0, 1, 5, 12])
def test_a_resume_after_n_gets_exactly_the_rest(client: TestClient, after: int) -> None:
    whole = client.post("/v1/chat/completions", json={
        **CHAT, "stream_options": {"include_usage": True}}, headers=RESUMABLE)
    stream_id = whole.headers["x-stream-id"]
    for headers, query in (({"Last-Event-ID": str(after)}, ""), ({}, f"?last_event_id={after}")):
        rest = client.get(resume_url(stream_id) + query, headers=headers)
        assert rest.status_code == 200 and rest.headers["x-stream-id"] == stream_id
        assert rest.text == "".join(frames(whole.text)[after:])  # byte for byte


def test_a_resume_without_an_id_gets_everything(client: TestClient) -> None:
    whole = client.post("/v1/chat/completions", json=CHAT, headers=RESUMABLE)
    assert client.get(resume_url(whole.headers["x-stream-id"])).text == whole.text


@pytest.mark.parametrize("after", [12, 13, 99])
def test_a_resume_at_or_past_the_end_gets_done(client: TestClient, after: int) -> None:
    whole = client.post("/v1/chat/completions", json=CHAT, headers=RESUMABLE)
    last = frames(whole.text)[-1]
    assert last == "id: 13\ndata: [DONE]\n\n"  # 12 chunks (the last with finish_reason)
    rest = client.get(resume_url(whole.headers["x-stream-id"]),
                      headers={"Last-Event-ID": str(after)})
    assert rest.text == ("".join(frames(whole.text)[after:]) if after < 13 else last)


def test_a_stream_dropped_mid_way_resumes_live_with_the_same_bytes() -> None:
    engine = ScriptedEngine(tokens=TOKENS, delay_s=0.03)
    with TestClient(create_app(Settings(orphan_grace_s=2), engine)) as client:
        with client.stream("POST", "/v1/chat/completions", json=CHAT,
                           headers=RESUMABLE) as response:
            stream_id, head = response.headers["x-stream-id"], head_of(response, 4)
        rest = client.get(resume_url(stream_id), headers={"Last-Event-ID": "4"})
        assert text_of(head + rest.text) == "".join(TOKENS)
        assert engine.aborted == []
        replay = client.get(resume_url(stream_id)).text
        assert head + rest.text == replay  # byte-identical to the whole stream


def test_a_bad_header_value_is_a_400(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", json=CHAT,
                           headers={"X-Stream-Resumable": "yes"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "X-Stream-Resumable"
    plain = client.post("/v1/chat/completions", json=CHAT, headers={"X-Stream-Resumable": "false"})
    assert plain.status_code == 200 and "x-stream-id" not in plain.headers


def test_without_stream_the_header_changes_nothing(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", json={**CHAT, "stream": False},
                           headers=RESUMABLE)
    assert response.json()["object"] == "chat.completion"
    assert "x-stream-id" not in response.headers


def test_unknown_streams_are_openai_404s(client: TestClient) -> None:
    response = client.get(resume_url("chatcmpl-nope"), headers={"Last-Event-ID": "3"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["code"] == "stream_not_found"


async def leave_early(running: Start, grace_s: float) -> tuple[ScriptedEngine, LeavingClient]:
    engine = ScriptedEngine(tokens=["w"] * 1000, delay_s=0.005)
    app = await running(Settings(orphan_grace_s=grace_s), engine)
    client = LeavingClient(json.dumps({**CHAT, "max_tokens": 200}).encode())
    scope = app.scope("POST", "/v1/chat/completions", {"content-type": "application/json",
                                                      "x-stream-resumable": "true"})
    await asyncio.wait_for(app.app(scope, client.receive, client.send), 5)
    assert client.sent[0]["status"] == 200
    return engine, client


async def test_a_client_that_leaves_does_not_abort_it_within_the_grace(running: Start) -> None:
    engine, _ = await leave_early(running, grace_s=0.4)
    # Time passing within the grace is the behaviour here: half of it, nothing may be aborted.
    await asyncio.sleep(0.2)
    assert engine.running and not engine.aborted  # still generating, for a client to return
    await until(lambda: not engine.running)  # nobody came back: aborted
    assert len(engine.aborted) == 1


async def test_a_resume_within_the_grace_keeps_it_going(running: Start) -> None:
    engine = ScriptedEngine(tokens=["w"] * 60, delay_s=0.01)
    app = await running(Settings(orphan_grace_s=0.3), engine)
    client = LeavingClient(json.dumps(CHAT).encode())
    scope = app.scope("POST", "/v1/chat/completions", {"content-type": "application/json",
                                                      "x-stream-resumable": "true"})
    await asyncio.wait_for(app.app(scope, client.receive, client.send), 5)
    assert client.sent[0]["status"] == 200, client.sent
    headers = dict(client.sent[0]["headers"])
    stream_id = headers[b"x-stream-id"].decode()
    events = await app.services.detached.follow(stream_id, 2)
    seqs = [e.seq async for e in events if e is not None]
    assert seqs == list(range(3, 62)) and not engine.aborted  # 60 chunks, then [DONE]


def test_only_the_key_that_started_it_may_resume() -> None:
    keys = "alice:sk-alice-1:chat,bob:sk-bob-1:chat"
    with TestClient(create_app(Settings(api_keys=keys), ScriptedEngine())) as client:
        alice, bob = ({"Authorization": "Bearer sk-alice-1"}, {"Authorization": "Bearer sk-bob-1"})
        whole = client.post("/v1/chat/completions", json=CHAT, headers={**RESUMABLE, **alice})
        url = resume_url(whole.headers["x-stream-id"])
        assert client.get(url, headers=alice).text == whole.text
        refused: Any = client.get(url, headers=bob)
        assert refused.status_code == 404
        assert refused.json()["error"]["code"] == "stream_not_found"
        assert client.get(url).status_code == 401


@pytest.mark.parametrize("header", [None, "false"])
async def test_a_plain_stream_still_aborts_at_once(running: Start, header: str | None) -> None:
    engine = ScriptedEngine(tokens=["w"] * 1000, delay_s=0.005)
    app = await running(Settings(orphan_grace_s=5), engine)
    client = LeavingClient(json.dumps({**CHAT, "max_tokens": 200}).encode())
    headers = {"content-type": "application/json"}
    if header is not None:
        headers["x-stream-resumable"] = header
    await asyncio.wait_for(app.app(app.scope("POST", "/v1/chat/completions", headers),
                                   client.receive, client.send), 5)
    assert client.sent[0]["status"] == 200
    assert not engine.running and len(engine.aborted) == 1  # no grace without the header
