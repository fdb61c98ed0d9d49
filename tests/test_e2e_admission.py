"""End to end: admission control on the real service (uvicorn + vLLM + the default model).

The shared service lets 4 generations into the engine and 4 more wait (tests/e2e_server.py).
A burst well above that, on every transport at once: each request gets either its whole reply
(at least the engine's 4) or a 429, and none hangs.

A refusal is never held in the queue: the server's own access log (each request found by the
`X-Request-ID` it was sent with) shows every 429 answered before the shortest accepted reply
ended. Timed in the server, not in this process: a CI run read every answer, refusals and
replies alike, within 22 ms of 6.1 s from the send (here: refusals within 0.1 s, replies in
0.5-1.4 s), which is what a stall of this process looks like, not the server's. How soon a
refusal reaches a client from its send is the burst phase of `benchmarks load`.

Every request is prepared first (its session created, its WebSocket open) and all are sent
together."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass

import httpx
import pytest
from websockets.asyncio.client import connect

from app.api.http.sse import EventParser
from tests.e2e_server import LOG_WAIT_S, LiveServer

pytestmark = pytest.mark.e2e
MODEL = "SmolLM2-135M-Instruct"
# Long enough that even the first accepted reply takes the server a thousand times a refusal's
# time (0.66 s against at most 0.43 ms, in four bursts here), so that a refusal held in the
# queue for the first place to free could not pass for a prompt one.
TOKENS = 16
BURST = 24
HANG_S = 240.0  # far beyond any reply of 16 tokens, even queued behind the whole burst


@dataclass
class Answer:
    transport: str
    outcome: str  # complete | refused | other
    seconds: float  # from the send, in this process
    detail: str = ""
    request_id: str | None = None  # an HTTP request's, as sent in X-Request-ID
    server_ms: float | None = None  # how long the server took over it


def request_id(i: int) -> str:
    return f"burst-{i}-{uuid.uuid4().hex[:8]}"  # unique across runs against one server


def server_ms(server: LiveServer, ids: set[str]) -> dict[str, float]:
    """How long the server took over each request (its access log's `duration_ms`), waiting
    for the log lines of requests that ended a moment ago."""
    deadline = time.monotonic() + LOG_WAIT_S
    while True:
        found = {record["request_id"]: float(record["duration_ms"])
                 for record in server.records()
                 if record.get("event") == "request" and record.get("request_id") in ids}
        if len(found) == len(ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


async def openai_stream(client: httpx.AsyncClient, go: asyncio.Barrier, i: int) -> Answer:
    rid = request_id(i)
    await go.wait()
    started = time.monotonic()
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"Say {i}."}],
            "max_tokens": TOKENS, "ignore_eos": True, "stream": True, "user": f"u{i}"}
    async with client.stream("POST", "/v1/chat/completions", json=body,
                             headers={"X-Request-ID": rid}) as response:
        raw = await response.aread()
    seconds = time.monotonic() - started
    if response.status_code == 429:
        assert int(response.headers["retry-after"]) >= 1
        assert json.loads(raw)["error"]["code"] == "queue_full"
        return Answer("openai", "refused", seconds, request_id=rid)
    complete = response.status_code == 200 and raw.endswith(b"data: [DONE]\n\n") \
        and b'"finish_reason":"length"' in raw
    return Answer("openai", "complete" if complete else "other", seconds, raw[-300:].decode(),
                  rid)


async def session_sse(client: httpx.AsyncClient, go: asyncio.Barrier, i: int) -> Answer:
    sid, rid = (await client.post("/v1/sessions")).json()["id"], request_id(i)
    await go.wait()
    started = time.monotonic()
    body = {"content": f"Say {i}.", "params": {"max_tokens": TOKENS, "ignore_eos": True}}
    async with client.stream("POST", f"/v1/sessions/{sid}/messages", json=body,
                             headers={"Accept": "text/event-stream", "X-Request-ID": rid}
                             ) as response:
        raw = await response.aread()
    seconds = time.monotonic() - started
    if response.status_code == 429:
        assert int(response.headers["retry-after"]) >= 1
        return Answer("sse", "refused", seconds, request_id=rid)
    events = list(EventParser().feed(raw))
    done = events[-1] if events else None
    complete = done is not None and done.event == "done" and \
        json.loads(done.data)["usage"]["completion_tokens"] == TOKENS
    return Answer("sse", "complete" if complete else "other", seconds, raw[-300:].decode(), rid)


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
                              time.monotonic() - started, str(frame),
                              server_ms=frame.get("timings", {}).get("total_ms"))
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
    assert complete and refused, [(a.transport, a.outcome, a.seconds) for a in answers]
    # The engine's 4 places are never refused; the 4 waiting ones are, when their first token
    # is predicted to miss the first-token objective (app/admission/objective.py): CI saw 4
    # and 8 whole replies in two runs.
    assert len(complete) >= 4
    # Refusals come at once, never after a wait in the queue: in the server, every HTTP 429
    # was answered before the shortest accepted reply ended (here 0.2-0.4 ms against 0.66 s and
    # more). The replies' times: an HTTP one's from the access log, a WebSocket one's from its
    # `timings`. A WebSocket's refusal comes from the same gate (app/admission/gate.py).
    timed = server_ms(live_server, {a.request_id for a in answers if a.request_id})
    for answer in answers:
        if answer.request_id is not None:
            answer.server_ms = timed.get(answer.request_id)
    seen = [(a.transport, a.outcome, round(a.seconds, 3), a.server_ms)
            for a in sorted(answers, key=lambda a: (a.transport, a.outcome, a.seconds))]
    refused_ms = [a.server_ms for a in refused if a.server_ms is not None]
    replies_ms = [a.server_ms for a in complete if a.server_ms is not None]
    assert len(replies_ms) == len(complete) and refused_ms, seen
    assert max(refused_ms) < min(replies_ms), seen
    # The service is still itself afterwards.
    after = httpx.post(live_server.url + "/v1/chat/completions", timeout=60, json={
        "model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
    assert after.status_code == 200
