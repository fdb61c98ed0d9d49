"""End to end against the real engine: conversations are sessions. One made through
`/v1/conversations` is continued by the session's SSE endpoint and read back as items; one made
through `/v1/sessions` is continued with `conversation=` through the `openai` SDK, its earlier
turns served by vLLM's prefix cache."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.e2e_server import LiveServer
from tests.sse_parse import check_grammar, parse_frames

pytestmark = pytest.mark.e2e
MODEL = "SmolLM2-135M-Instruct"
SSE = {"Accept": "text/event-stream"}
PARAMS = {"max_tokens": 16, "temperature": 0}
# Over one prefix-cache block (32 tokens on the CPU engine): what a second prompt can reuse.
SYSTEM = ("You are a helpful assistant. You answer in one short sentence, you name things "
          "plainly, and you never ask a question back. Lists are comma separated.")


@pytest.fixture
def sdk(live_server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=live_server.url + "/v1", api_key="unused",
                       max_retries=0) as client:
        yield client


def turn(server: LiveServer, sid: str, content: str) -> str:
    """A session turn over SSE; the reply's text."""
    response = httpx.post(f"{server.url}/v1/sessions/{sid}/messages", headers=SSE, timeout=60,
                          json={"content": content, "params": PARAMS})
    events = check_grammar(parse_frames(response.text))
    assert events[-1]["event"] == "done"
    return "".join(e["data"]["text"] for e in events if e["event"] == "token")


def test_a_conversation_continued_by_the_session_endpoint(live_server: LiveServer,
                                                          sdk: openai.OpenAI) -> None:
    conversation = sdk.conversations.create(
        items=[{"role": "user", "content": "My name is Ada."},
               {"role": "assistant", "content": "Nice to meet you, Ada."}],
        metadata={"from": "e2e"})
    assert conversation.id in [s["id"] for s in httpx.get(
        live_server.url + "/v1/sessions").json()["data"]]
    reply = turn(live_server, conversation.id, "What is my name?")
    items = sdk.conversations.items.list(conversation.id, order="asc").data
    assert [(i.type, i.role) for i in items] == [  # type: ignore[union-attr]
        ("message", "user"), ("message", "assistant"), ("message", "user"),
        ("message", "assistant")]
    assert reply and items[-1].content[0].text == reply  # type: ignore[union-attr]
    assert items[-1].status == "completed"  # type: ignore[union-attr]


def test_a_session_continued_with_conversation_through_the_sdk(live_server: LiveServer,
                                                               sdk: openai.OpenAI) -> None:
    sid = httpx.post(live_server.url + "/v1/sessions",
                     json={"system": SYSTEM}).json()["id"]
    turn(live_server, sid, "Name three colours.")
    response = sdk.responses.create(model=MODEL, conversation=sid, input="And three fruits?",
                                    max_output_tokens=16, temperature=0)
    assert response.output_text and response.conversation is not None
    assert response.conversation.id == sid
    # Its prompt starts as the session's first turn did: vLLM's prefix cache has that.
    assert response.usage is not None and response.usage.input_tokens_details.cached_tokens > 0
    items = sdk.conversations.items.list(sid, order="asc").data
    assert len(items) == 4 and items[-1].id == response.output[0].id
    assert items[-1].content[0].text == response.output_text  # type: ignore[union-attr]
    messages = httpx.get(f"{live_server.url}/v1/sessions/{sid}").json()["messages"]
    assert [m["content"] for m in messages][2:] == ["And three fruits?", response.output_text]
