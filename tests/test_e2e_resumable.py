"""End to end: a resumable chat completion stream (X-Stream-Resumable) against the real
service and engine, read with the openai SDK's streaming raw response, dropped, and resumed
with httpx and Last-Event-ID."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from app.api.http.sse import EventParser
from tests.e2e_server import LiveServer, warm_prefix_cache

pytestmark = pytest.mark.e2e
MODEL = "SmolLM2-135M-Instruct"
MESSAGES = [{"role": "user", "content": "Name three colours, one per line."}]
ASK = {"model": MODEL, "messages": MESSAGES, "max_tokens": 24, "temperature": 0}


def text_of(datas: list[str]) -> str:
    chunks = [json.loads(d) for d in datas if d != "[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def test_a_dropped_resumable_stream_resumes_to_the_same_text(live_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=live_server.url + "/v1", api_key="unused", max_retries=0)
    warm_prefix_cache(live_server, MODEL, MESSAGES)
    whole = client.chat.completions.create(**ASK, stream=True)  # type: ignore[call-overload]
    expected = "".join(c.choices[0].delta.content or "" for c in whole if c.choices)
    assert expected

    head: list[str] = []
    last_id = "0"
    with client.chat.completions.with_streaming_response.create(
            **ASK, stream=True, extra_headers={"X-Stream-Resumable": "true"}) as raw:
        stream_id = raw.headers["x-stream-id"]
        parser = EventParser()
        for piece in raw.iter_bytes():
            for event in parser.feed(piece):
                head.append(event.data)
                last_id = event.id or last_id
            if len(head) >= 3:
                break  # leave mid-reply: the connection is dropped here
    assert stream_id.startswith("chatcmpl-") and last_id == str(len(head))

    url = f"{live_server.url}/v1/chat/completions/streams/{stream_id}"
    rest = httpx.get(url, headers={"Last-Event-ID": last_id}, timeout=60)
    assert rest.status_code == 200
    events = list(EventParser().feed(rest.content))
    assert [e.id for e in events] == [str(i) for i in range(int(last_id) + 1,
                                                             int(last_id) + 1 + len(events))]
    assert events[-1].data == "[DONE]"
    assert text_of(head + [e.data for e in events]) == expected  # temperature 0: the same reply

    again = httpx.get(url, params={"last_event_id": last_id}, timeout=60)
    assert again.content == rest.content  # after its end, the same bytes again
    missing = httpx.get(url.replace(stream_id, "chatcmpl-unknown"), timeout=60)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "stream_not_found"
