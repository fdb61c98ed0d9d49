"""End to end: admission control on the real service (uvicorn + vLLM + the default model).

The shared service lets 4 generations into the engine and 4 more wait (tests/e2e_server.py).
A burst well above that, on every transport at once: each request gets either its whole reply
(at least the engine's 4) or a 429 that comes before any accepted reply has ended, and none hangs.

Every request is prepared first (its session created, its WebSocket open) and all are sent
together, each timed from that moment: timing the session ones after their session was created
and the OpenAI ones from before it let a loaded CI machine see a "slow" refusal that was only the
burst's own set-up (2.09 s against a 2.06 s median reply)."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass

import httpx
import pytest
from websockets.asyncio.client import connect

from app.api.http.sse import EventParser
from tests.e2e_server import LiveServer

pytestmark = pytest.mark.e2e
MODEL = "SmolLM2-135M-Instruct"
# Long enough that an accepted reply outlasts the burst's own delivery: on a loaded 2-core CI
# machine the requests reached the server 0.9 s after the burst was sent, and 3-token replies
# ended in 0.93 s (median), no later than the refusals that had waited as long for the server.
TOKENS = 16
BURST = 24
HANG_S = 240.0  # far beyond any reply of 16 tokens, even queued behind the whole burst


@dataclass
class Answer:
    transport: str
    outcome: str  # complete | refused | other
    seconds: float
    detail: str = ""


async def openai_stream(client: httpx.AsyncClient, go: asyncio.Barrier, i: int) -> Answer:
    await go.wait()
    started = time.monotonic()
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"Say {i}."}],
            "max_tokens": TOKENS, "ignore_eos": True, "stream": True, "user": f"u{i}"}
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        raw = await response.aread()
    seconds = time.monotonic() - started
    if response.status_code == 429:
        assert int(response.headers["retry-after"]) >= 1
        assert json.loads(raw)["error"]["code"] == "queue_full"
        return Answer("openai", "refused", seconds)
    complete = response.status_code == 200 and raw.endswith(b"data: [DONE]\n\n") \
        and b'"finish_reason":"length"' in raw
    return Answer("openai", "complete" if complete else "other", seconds, raw[-300:].decode())


async def session_sse(client: httpx.AsyncClient, go: asyncio.Barrier, i: int) -> Answer:
    sid = (await client.post("/v1/sessions")).json()["id"]
    await go.wait()
    started = time.monotonic()
    body = {"content": f"Say {i}.", "params": {"max_tokens": TOKENS, "ignore_eos": True}}
    async with client.stream("POST", f"/v1/sessions/{sid}/messages", json=body,
                             headers={"Accept": "text/event-stream"}) as response:
        raw = await response.aread()
    seconds = time.monotonic() - started
    if response.status_code == 429:
        assert int(response.headers["retry-after"]) >= 1
        return Answer("sse", "refused", seconds)
    events = list(EventParser().feed(raw))
    done = events[-1] if events else None
    complete = done is not None and done.event == "done" and \
        json.loads(done.data)["usage"]["completion_tokens"] == TOKENS
    return Answer("sse", "complete" if complete else "other", seconds, raw[-300:].decode())


async def session_ws(server: LiveServer, client: httpx.AsyncClient, go: asyncio.Barrier,
                     i: int) -> Answer:
    sid = (await client.post("/v1/sessions")).json()["id"]
    ws_url = server.url.replace("http", "ws", 1) + f"/v1/sessions/{sid}/ws"
    async with connect(ws_url) as ws:
        await go.wait()
        started = time.monotonic()
        await ws.send(json.dumps({"type": "message", "content": f"Say {i}.",
                                  "params": {"max_tokens": TOKENS, "ignore_eos": True}}))
        async for raw in ws:
            frame = json.loads(raw)
            if frame["type"] == "error" and "message_id" not in frame:
                outcome = "refused" if frame["status"] == 4429 else "other"
                return Answer("ws", outcome, time.monotonic() - started, str(frame))
            if frame["type"] in ("done", "error"):
                complete = frame["type"] == "done" and frame["usage"]["completion_tokens"] == TOKENS
                return Answer("ws", "complete" if complete else "other",
                              time.monotonic() - started, str(frame))
    return Answer("ws", "other", time.monotonic() - started, "socket closed")


async def burst(server: LiveServer) -> list[Answer]:
    limits = httpx.Limits(max_connections=BURST * 2)
    async with httpx.AsyncClient(base_url=server.url, timeout=HANG_S, limits=limits) as client:
        go = asyncio.Barrier(BURST)  # every request prepared, then all sent at once
        calls = [(openai_stream(client, go, i) if i % 3 == 0 else session_sse(client, go, i)
                  if i % 3 == 1 else session_ws(server, client, go, i)) for i in range(BURST)]
        async with asyncio.timeout(HANG_S):  # a hang fails here, not in CI's global timeout
            return list(await asyncio.gather(*calls))


def test_a_burst_above_the_queue_gets_whole_replies_or_fast_429s(live_server: LiveServer) -> None:
    answers = asyncio.run(burst(live_server))
    odd = [a for a in answers if a.outcome == "other"]
    assert not odd, odd
    complete = [a for a in answers if a.outcome == "complete"]
    refused = [a for a in answers if a.outcome == "refused"]
    assert complete and refused, [(a.transport, a.outcome) for a in answers]
    # The engine's 4 places are never refused; the 4 waiting ones are, when their first token
    # is predicted to miss the first-token objective (app/admission/objective.py): CI saw 4
    # and 8 whole replies in two runs.
    assert len(complete) >= 4
    # Refusals come at once: before the typical accepted reply has even ended.
    assert max(a.seconds for a in refused) < statistics.median(a.seconds for a in complete)
    # The service is still itself afterwards.
    after = httpx.post(live_server.url + "/v1/chat/completions", timeout=60, json={
        "model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
    assert after.status_code == 200
