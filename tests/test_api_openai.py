"""The OpenAI-compatible API (app/api/openai/) with a scripted engine: shapes, streaming,
bad input, disconnects."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from app.api.http.sse import EventParser
from app.main import create_app
from app.settings import Settings
from tests.asgi import LeavingClient
from tests.conftest import Start
from tests.fakes import ScriptedEngine
from tests.waiting import until

CHAT = {"model": "scripted", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def client(engine: ScriptedEngine) -> Any:
    settings = Settings(model_aliases=("open-autoglm",), max_n=4, default_max_tokens=16)
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


def sse_chunks(text: str) -> list[Any]:
    data = [event.data for event in EventParser().feed(text.encode())]
    assert data[-1] == "[DONE]"
    return [json.loads(item) for item in data[:-1]]


def assert_openai_error(response: httpx.Response, status: int, param: str | None = None) -> dict:  # type: ignore[type-arg]
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    if param is not None:
        assert error["param"] == param, error
    return error  # type: ignore[no-any-return]


def test_chat_completion(client: TestClient) -> None:
    body = client.post("/v1/chat/completions", json=CHAT).json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "scripted" and isinstance(body["created"], int)
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant",
                                                        "content": "Hello there!"},
                                "logprobs": None, "finish_reason": "stop"}]
    usage = body["usage"]
    assert usage["completion_tokens"] == 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + 4


def test_chat_stream_role_first_with_text_usage_and_done(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", json={
        **CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = sse_chunks(response.text)
    assert all(c["id"] == chunks[0]["id"] and c["object"] == "chat.completion.chunk"
               for c in chunks)
    first = chunks[0]["choices"][0]["delta"]
    assert first == {"role": "assistant", "content": "Hel"}  # role and real text together
    content = [c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]]
    assert "".join(content) == "Hello there!"
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4


def test_chat_n2_and_logprobs(client: TestClient) -> None:
    body = client.post("/v1/chat/completions", json={**CHAT, "n": 2, "logprobs": True,
                                                      "top_logprobs": 2}).json()
    assert [c["index"] for c in body["choices"]] == [0, 1]
    content = body["choices"][0]["logprobs"]["content"]
    assert [t["token"] for t in content] == ["Hel", "lo", " there", "!"]
    assert content[0]["top_logprobs"] == [
        {"token": "Hel", "logprob": -0.5, "bytes": list(b"Hel")},
        {"token": "zz", "logprob": -1.5, "bytes": list(b"zz")}]
    assert body["usage"]["completion_tokens"] == 8


def test_completions_and_legacy_engines_route(client: TestClient) -> None:
    body = client.post("/v1/completions", json={"model": "scripted", "prompt": "Once",
                                                "max_tokens": 2, "logprobs": 1}).json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "Hello" and body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["logprobs"]["text_offset"] == [0, 3]
    legacy = client.post("/v1/engines/open-autoglm/completions",
                         json={"prompt": "Explain", "max_tokens": 200, "temperature": 0.7},
                         headers={"Authorization": "Bearer anything"})
    assert legacy.status_code == 200
    assert legacy.json()["choices"][0]["text"] == "Hello there!"


def test_completions_stream(client: TestClient) -> None:
    response = client.post("/v1/completions", json={"model": "scripted", "prompt": "x",
                                                    "stream": True})
    chunks = sse_chunks(response.text)
    assert "".join(c["choices"][0]["text"] for c in chunks) == "Hello there!"
    assert chunks[0]["choices"][0]["text"] == "Hel"


def test_models_lists_name_and_aliases(client: TestClient) -> None:
    ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert ids == ["scripted", "open-autoglm"]


def test_neutral_values_of_unsupported_parameters_pass(client: TestClient) -> None:
    response = client.post("/v1/completions", json={"model": "scripted", "prompt": "x",
                                                    "repetition_penalty": 1.0, "logprobs": None,
                                                    "ignore_eos": True})
    assert response.status_code == 200


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"model": "scripted"}, 400, "messages"),
    ({"model": "scripted", "messages": []}, 400, "messages"),
    ({"model": "scripted", "messages": [{"role": "wizard", "content": "x"}]}, 400,
     "messages[0].role"),
    ({"model": "scripted", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://x"}}]}]}, 400,
     "messages[0].content[0].type"),
    ({**CHAT, "n": 5}, 400, "n"),
    ({**CHAT, "max_tokens": 1000}, 400, "max_tokens"),
    ({**CHAT, "max_tokens": 10_000}, 400, "max_tokens"),
    ({**CHAT, "max_tokens": True}, 400, "max_tokens"),
    ({**CHAT, "messages": [{"role": "user", "content": "x" * 600}]}, 400, "messages"),
    ({**CHAT, "best_of": 2}, 400, "best_of"),
    ({**CHAT, "model": "gpt-9"}, 404, "model"),
    ({**CHAT, "tools": [{"type": "function"}]}, 400, "tools[0].function"),
    ({**CHAT, "frobnicate": 1}, 400, "frobnicate"),
    ({**CHAT, "temperature": -1}, 400, "temperature"),
    ({**CHAT, "top_logprobs": 2}, 400, "top_logprobs"),
    ({**CHAT, "stream_options": {"include_usage": True}}, 400, "stream_options"),
])
def test_bad_chat_requests(client: TestClient, body: dict[str, Any], status: int,
                           param: str) -> None:
    error = assert_openai_error(client.post("/v1/chat/completions", json=body), status, param)
    if param == "max_tokens" and body["max_tokens"] == 1000:
        assert "256" in error["message"] and "1000" in error["message"]
        assert error["code"] == "context_length_exceeded"
    if param == "max_tokens" and body["max_tokens"] == 10_000:  # over max_reply_tokens
        assert "4096" in error["message"] and error["code"] == "invalid_request"
    if param in ("frobnicate", "best_of"):
        assert error["code"] == "unknown_parameter"


def test_unknown_model_is_openai_404(client: TestClient) -> None:
    error = assert_openai_error(client.post("/v1/completions", json={"model": "nope",
                                                                     "prompt": "x"}), 404)
    assert error["code"] == "model_not_found"


def test_malformed_json_and_wrong_content_type(client: TestClient) -> None:
    assert_openai_error(client.post("/v1/chat/completions", content=b"{",
                                    headers={"content-type": "application/json"}), 400)
    assert_openai_error(client.post("/v1/chat/completions", content=json.dumps(CHAT),
                                    headers={"content-type": "text/plain"}), 415)


async def test_stream_disconnect_aborts_at_once(running: Start) -> None:
    engine = ScriptedEngine(tokens=["w"] * 1000, delay_s=0.005)
    app = await running(Settings(), engine)
    client = LeavingClient(json.dumps({**CHAT, "stream": True, "max_tokens": 200}).encode())
    scope = app.scope("POST", "/v1/chat/completions", {"content-type": "application/json"})
    await asyncio.wait_for(app.app(scope, client.receive, client.send), 5)
    assert client.sent[0]["status"] == 200, client.sent
    assert not engine.running and len(engine.aborted) == 1  # no grace period here


async def test_non_stream_disconnect_aborts_too(running: Start) -> None:
    engine = ScriptedEngine(tokens=["w"] * 1000, delay_s=0.005)
    app = await running(Settings(), engine)
    client = LeavingClient(json.dumps({**CHAT, "max_tokens": 200}).encode(), after_chunks=None)

    async def leave_mid_generation() -> None:
        await until(lambda: engine.yielded >= 5)  # a few tokens into the reply
        client.leave.set()

    leaver = asyncio.create_task(leave_mid_generation())
    scope = app.scope("POST", "/v1/chat/completions", {"content-type": "application/json"})
    await asyncio.wait_for(app.app(scope, client.receive, client.send), 5)
    await leaver
    assert not engine.running and len(engine.aborted) == 1
    assert client.sent[0]["status"] == 499


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/sessions/ses_x/messages"])
async def test_a_client_that_leaves_before_its_body_is_a_499_not_a_crash(
        running: Start, path: str, caplog: pytest.LogCaptureFixture) -> None:
    # CI saw a burst's client give up mid-request: the body read raised ClientDisconnect,
    # which was logged as a crash and re-raised to uvicorn.
    engine = ScriptedEngine()
    app = await running(Settings(), engine)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = app.scope("POST", path, {"content-type": "application/json"})
    await asyncio.wait_for(app.app(scope, receive, send), 5)
    assert sent[0]["status"] == 499
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert not engine.prompts and not engine.rendered  # no work was spent on it
