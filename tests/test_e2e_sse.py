"""End to end: the real service (uvicorn + vLLM + the default model) over real HTTP."""

from __future__ import annotations

import time
from functools import cache
from typing import Any

import httpx
import pytest

from tests.e2e_server import LOG_WAIT_S, LiveServer
from tests.sse_parse import check_grammar, parse_frames

pytestmark = pytest.mark.e2e
SSE = {"Accept": "text/event-stream"}


@cache
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    from app.engine.model import default_model_dir
    from app.settings import from_env

    return AutoTokenizer.from_pretrained(default_model_dir(from_env().cache_dir))


def session(server: LiveServer, **body: Any) -> str:
    response = httpx.post(server.url + "/v1/sessions", json=body)
    assert response.status_code == 201
    return str(response.json()["id"])


def test_health_and_ready(live_server: LiveServer) -> None:
    assert httpx.get(live_server.url + "/health").status_code == 200
    ready = httpx.get(live_server.url + "/ready").json()
    assert ready == {"status": "ready", "model": "SmolLM2-135M-Instruct"}


def test_streamed_reply_has_the_contract_grammar_and_engine_usage(live_server: LiveServer) -> None:
    sid = session(live_server, system="You are a helpful assistant.")
    with httpx.stream("POST", f"{live_server.url}/v1/sessions/{sid}/messages", headers=SSE,
                      json={"content": "Name three colours.", "params": {"max_tokens": 40,
                                                                         "temperature": 0}},
                      timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read().decode()
    events = check_grammar(parse_frames(body))
    tokens, done = events[1:-1], events[-1]
    assert done["event"] == "done" and len(tokens) > 1
    text = "".join(e["data"]["text"] for e in tokens)
    usage, timings = done["data"]["usage"], done["data"]["timings"]
    assert done["data"]["finish_reason"] in ("stop", "length")
    # The engine's own counts: every token event's n adds up, plus an end-of-sequence token
    # (counted, never shown) when the model stopped by itself.
    shown = sum(e["data"]["n"] for e in tokens)
    eos = 1 if done["data"]["finish_reason"] == "stop" else 0
    assert usage["completion_tokens"] == shown + eos
    assert usage["completion_tokens"] <= 40
    # ...and the tokenizer's count of the text agrees (re-encoding can merge a token or two).
    assert abs(len(tokenizer().encode(text, add_special_tokens=False)) - shown) <= 2
    prompt = tokenizer().apply_chat_template(
        [{"role": "system", "content": "You are a helpful assistant."},
         {"role": "user", "content": "Name three colours."}], tokenize=True,
        add_generation_prompt=True)
    prompt_ids = prompt["input_ids"] if hasattr(prompt, "keys") else prompt
    assert usage["prompt_tokens"] == len(prompt_ids)
    assert 0 < timings["ttft_ms"] <= timings["total_ms"]
    assert timings["tokens_per_s"] > 0
    stored = httpx.get(f"{live_server.url}/v1/sessions/{sid}").json()["messages"][-1]
    assert stored["content"] == text and stored["status"] == "done"


def test_second_turn_reuses_the_prefix_cache(live_server: LiveServer) -> None:
    sid = session(live_server, system="You are a helpful assistant. " * 30)
    usages = []
    for question in ("What is a cat?", "And a dog?"):
        response = httpx.post(f"{live_server.url}/v1/sessions/{sid}/messages", headers=SSE,
                              json={"content": question, "params": {"max_tokens": 16}},
                              timeout=60)
        usages.append(check_grammar(parse_frames(response.text))[-1]["data"]["usage"])
    assert usages[1]["cached_tokens"] > 0


def test_prompt_longer_than_context_is_400_on_both_apis(live_server: LiveServer) -> None:
    long = "word " * (live_server.max_model_len + 100)
    sid = session(live_server)
    response = httpx.post(f"{live_server.url}/v1/sessions/{sid}/messages", headers=SSE,
                          json={"content": long})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"
    openai = httpx.post(f"{live_server.url}/v1/chat/completions", json={
        "model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": long}]})
    assert openai.status_code == 400
    assert openai.json()["error"]["code"] == "context_length_exceeded"


def test_disconnect_mid_reply_leaves_no_running_request(live_server: LiveServer) -> None:
    sid = session(live_server)
    request_id = f"sse-disconnect-{time.monotonic_ns()}"
    with httpx.stream("POST", f"{live_server.url}/v1/sessions/{sid}/messages",
                      headers={**SSE, "X-Request-ID": request_id},
                      json={"content": "Tell me a very long story.",
                            # ignore_eos: a story that ends on its own within the grace period
                            # (CI saw one) would be "done", not cancelled
                            "params": {"max_tokens": 1000, "ignore_eos": True}},
                      timeout=60) as response:
        seen = 0
        for line in response.iter_lines():
            if line.startswith("event: token"):
                seen += 1
                if seen == 3:
                    break  # leaving the block closes the connection mid-reply
    # Timed by the server's log, not here: this process may be kept off the CPU for seconds
    # (CI read the gauge at 0 just after the disconnect: the grace had passed).
    left = live_server.wait_for_record(
        lambda r: r.get("event") == "request" and r.get("request_id") == request_id)
    stream = live_server.wait_for_record(
        lambda r: r.get("event") == "stream" and r.get("request_id") == request_id,
        timeout_s=live_server.orphan_grace_s + LOG_WAIT_S)
    # The reply outlived its listener for the grace period (5 s here), then was aborted.
    assert stream["outcome"] == "cancelled", stream
    aborted = live_server.wait_for_record(
        lambda r: r.get("message") == f"reply {stream['message_id']}: no listener for "
                                      f"{live_server.orphan_grace_s:.1f} s, aborting")
    assert aborted["ts"] - left["ts"] >= live_server.orphan_grace_s - 0.01
    # The engine runs nothing for it any more.
    live_server.wait_for_metric("streamchat_engine_running_requests", 0, timeout_s=LOG_WAIT_S)
    reply = httpx.get(f"{live_server.url}/v1/sessions/{sid}").json()["messages"][-1]
    assert reply["id"] == stream["message_id"]
    assert reply["status"] == "cancelled" and reply["content"]
    assert 3 <= reply["usage"]["completion_tokens"] < 1000
