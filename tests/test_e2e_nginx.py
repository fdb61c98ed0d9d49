"""End to end behind nginx: deploy/nginx.conf run by the real nginx, in front of two real
replicas sharing one real Redis (tests/replicas.py).

Tokens must come through as they are generated on every transport (a buffering proxy would
hand them over at the end), a reply must be resumable through nginx after the replica
generating it is killed, and the body limit must be the service's."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from app.api.http.sse import EventParser
from app.settings import Settings
from tests.e2e_server import LiveServer
from tests.nginx_server import Nginx
from tests.replicas import ReplicaPool, kill, port_of
from tests.sse_parse import check_grammar, parse_frames

pytestmark = pytest.mark.e2e
SSE = {"Accept": "text/event-stream"}
STREAM_TOKENS = 32  # long enough to see a spread, short enough for CI
# A buffering proxy delivers a whole reply in one or a few reads at its end; these hold only
# if tokens came while they were generated (~15 tokens/s on a CPU: 32 take about 2 s).
MIN_SPREAD_S = 0.25


@pytest.fixture(scope="module")
def nginx(replica_pool: ReplicaPool) -> Iterator[Nginx]:
    proxy = Nginx([port_of(server) for server in replica_pool.alive()])
    try:
        yield proxy
    finally:
        proxy.stop()


@dataclass
class Arrival:
    event: dict[str, Any]  # {"event", "id", "data"} as parse_frames gives
    at: float  # time.monotonic() when the read that completed it returned
    read: int  # which read from the connection it came in


def arrivals(chunks: Iterable[bytes]) -> Iterator[Arrival]:
    """SSE events as they arrive from the connection (decoded, as the client's code sees
    them), each with its time and read."""
    parser = EventParser()
    for read, chunk in enumerate(chunks):
        at = time.monotonic()
        for event in parser.feed(chunk):
            data = event.data if event.data == "[DONE]" else json.loads(event.data)
            yield Arrival({"event": event.event, "id": event.id, "data": data}, at, read)


def assert_incremental(tokens: list[Arrival]) -> None:
    """Tokens spread over many reads and over time, as the engine produced them."""
    assert len(tokens) >= STREAM_TOKENS // 2, f"only {len(tokens)} token events"
    reads = {token.read for token in tokens}
    assert len(reads) >= len(tokens) // 2, (
        f"{len(tokens)} token events came in only {len(reads)} reads: buffered on the way")
    spread = tokens[-1].at - tokens[0].at
    assert spread >= MIN_SPREAD_S, f"first to last token in {spread:.3f} s: buffered on the way"


def new_session(nginx: Nginx) -> str:
    response = httpx.post(nginx.url + "/v1/sessions", json={"system": "Be brief."})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def long_params(max_tokens: int = STREAM_TOKENS) -> dict[str, Any]:
    return {"max_tokens": max_tokens, "ignore_eos": True}


def request_log_line(servers: list[LiveServer], request_id: str) -> dict[str, Any]:
    """The replica's log line of the request (written as the response ends)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for server in servers:
            for line in server.log_path.read_text(errors="replace").splitlines():
                if request_id in line and '"event":"request"' in line:
                    return dict(json.loads(line))
        time.sleep(0.1)
    raise AssertionError(f"no replica logged request {request_id}")


def test_sse_tokens_come_through_as_generated(nginx: Nginx,
                                              two_replicas: list[LiveServer]) -> None:
    sid = new_session(nginx)
    request_id = f"nginx-e2e-{time.monotonic_ns()}"
    headers = {**SSE, "X-Request-ID": request_id, "X-Forwarded-For": "203.0.113.7"}
    with httpx.stream("POST", f"{nginx.url}/v1/sessions/{sid}/messages", headers=headers,
                      json={"content": "Count to fifty.", "params": long_params()},
                      timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        # The client's id reached the service, which answered with it.
        assert response.headers["x-request-id"] == request_id
        events = list(arrivals(response.iter_bytes()))
    numbered = check_grammar([a.event for a in events])
    assert numbered[-1]["event"] == "done"
    assert_incremental([a for a in events if a.event["event"] == "token"])
    assert "content-encoding" not in response.headers
    # nginx passed the client's address on, and the replica believed it (127.0.0.1 is in
    # uvicorn's FORWARDED_ALLOW_IPS by default).
    assert request_log_line(two_replicas, request_id)["client"] == "203.0.113.7"
    # Without an id of its own, the client gets nginx's ($request_id: 32 hex digits; the
    # service makes 16), the one nginx logged and sent on.
    response = httpx.get(f"{nginx.url}/v1/sessions/{sid}")
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert nginx.logged(f"request_id={response.headers['x-request-id']}")


def test_websocket_tokens_come_through_as_generated(nginx: Nginx,
                                                    two_replicas: list[LiveServer]) -> None:
    sid = new_session(nginx)
    tokens: list[Arrival] = []
    ws_url = nginx.url.replace("http://", "ws://") + f"/v1/sessions/{sid}/ws"
    with connect(ws_url, open_timeout=30) as ws:
        ws.send(json.dumps({"type": "message", "content": "Count to fifty.",
                            "params": long_params()}))
        while True:
            frame = json.loads(ws.recv(timeout=120))
            if frame["type"] == "token":
                tokens.append(Arrival(frame, time.monotonic(), len(tokens)))
            if frame["type"] in ("done", "error"):
                break
        assert frame["type"] == "done", frame
        # The socket outlives the reply: a ping still gets its pong through nginx.
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=30))["type"] == "pong"
    assert [t.event["seq"] for t in tokens] == list(range(1, len(tokens) + 1))
    assert_incremental(tokens)


def test_openai_stream_comes_through_as_generated(nginx: Nginx,
                                                  two_replicas: list[LiveServer]) -> None:
    model = httpx.get(nginx.url + "/v1/models").json()["data"][0]["id"]
    body = {"model": model, "messages": [{"role": "user", "content": "Count to fifty."}],
            "stream": True, "stream_options": {"include_usage": True}, **long_params()}
    with httpx.stream("POST", nginx.url + "/v1/chat/completions", json=body,
                      timeout=120) as response:
        assert response.status_code == 200
        chunks = list(arrivals(response.iter_bytes()))
    assert chunks[-1].event["data"] == "[DONE]"
    usage = chunks[-2].event["data"]["usage"]
    assert usage["completion_tokens"] == STREAM_TOKENS
    assert_incremental([c for c in chunks[:-1]
                        if c.event["data"]["choices"] and
                        c.event["data"]["choices"][0]["delta"].get("content")])
    assert "content-encoding" not in response.headers


def test_body_limit_is_the_services(nginx: Nginx, two_replicas: list[LiveServer]) -> None:
    limit = Settings().max_body_bytes
    url = f"{nginx.url}/v1/sessions/{new_session(nginx)}/messages"

    def body(size: int) -> bytes:
        head, tail = b'{"content": "', b'"}'
        return head + b"x" * (size - len(head) - len(tail)) + tail

    refused_before = [rejected_too_large(server) for server in two_replicas]
    # At the limit nginx lets it through: the service answers (the message is too long).
    at_limit = httpx.post(url, content=body(limit), headers={"Content-Type": "application/json"})
    assert at_limit.status_code == 400, at_limit.text
    assert at_limit.json()["error"]["param"] == "content"
    # One byte over, declared or chunked: nginx answers in the service's own words.
    declared = httpx.post(url, content=body(limit + 1),
                          headers={"Content-Type": "application/json"})
    chunked = httpx.post(url, content=iter([body(limit + 1)[:limit], b"}"]),
                         headers={"Content-Type": "application/json"})
    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"error": {
            "message": f"request body is larger than {limit} bytes",
            "type": "invalid_request_error", "code": "request_too_large", "param": None}}
        assert response.headers["x-request-id"]
    # ...and no replica saw either.
    assert [rejected_too_large(server) for server in two_replicas] == refused_before


def test_metrics_stay_with_the_replicas(nginx: Nginx, two_replicas: list[LiveServer]) -> None:
    # Scraped from each replica; through nginx they would be either's at random, and public.
    response = httpx.get(nginx.url + "/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert all(httpx.get(server.url + "/metrics").status_code == 200 for server in two_replicas)


def rejected_too_large(server: LiveServer) -> float:
    metrics = httpx.get(server.url + "/metrics").text
    found = re.search(r'^streamchat_rejected_requests_total\{reason="too_large"\} (\S+)$',
                      metrics, re.MULTILINE)
    assert found is not None
    return float(found.group(1))


def admitted(server: LiveServer) -> float:
    metrics = httpx.get(server.url + "/metrics").text
    found = re.search(r"^streamchat_admitted_generations (\S+)$", metrics, re.MULTILINE)
    assert found is not None
    return float(found.group(1))


@pytest.mark.leaves_replica_dead  # run after the pool's other users (tests/replicas.py)
def test_reply_resumes_through_nginx_after_its_replica_is_killed(
        nginx: Nginx, two_replicas: list[LiveServer]) -> None:
    sid = new_session(nginx)
    finished = httpx.post(f"{nginx.url}/v1/sessions/{sid}/messages", headers=SSE, timeout=120,
                          json={"content": "Say apple.", "params": {"max_tokens": 8}})
    finished_events = check_grammar(parse_frames(finished.text))
    seen: list[dict[str, Any]] = []
    with httpx.stream("POST", f"{nginx.url}/v1/sessions/{sid}/messages", headers=SSE,
                      json={"content": "Write a long story.", "params": long_params(1000)},
                      timeout=60) as response:
        assert response.status_code == 200
        events = arrivals(response.iter_bytes())
        for arrival in events:
            if arrival.event["id"] is not None:
                seen.append(arrival.event)
            if len(seen) == 6:
                break
        mid = seen[0]["data"]["message_id"]
        generating = [server for server in two_replicas if admitted(server) == 1]
        assert len(generating) == 1, "one replica should be generating the reply"
        victim, survivor = generating[0], next(s for s in two_replicas if s is not generating[0])
        kill(victim)  # the stream through nginx stays open until nginx sees it die
        with pytest.raises(httpx.TransportError):  # cut short: no terminal event, no last chunk
            for arrival in events:
                if arrival.event["id"] is not None:
                    seen.append(arrival.event)
    assert seen[-1]["event"] == "token"
    last = int(seen[-1]["id"])
    assert [int(e["id"]) for e in seen] == list(range(last + 1))
    # Requests through nginx go on: each worker's round robin sends every other one to the
    # dead replica (until it counts as down), and nginx passes it on to the survivor.
    assert [httpx.get(nginx.url + "/health").status_code for _ in range(6)] == [200] * 6
    assert nginx.logged(f"upstream=127.0.0.1:{port_of(victim)}, 127.0.0.1:{port_of(survivor)} ")

    # Resumed through nginx, which finds the survivor: the events the dead replica had
    # recorded in Redis, then, once its claim has run out, the reply's end.
    resumed = httpx.get(f"{nginx.url}/v1/sessions/{sid}/messages/{mid}/stream",
                        headers={"Last-Event-ID": str(last)}, timeout=60)
    assert resumed.status_code == 200
    rest = parse_frames(resumed.text)
    assert [int(e["id"]) for e in rest] == list(range(last + 1, last + 1 + len(rest))), (
        "event ids should go on from the last one seen, without a gap or a repeat")
    assert all(e["event"] == "token" for e in rest[:-1])
    assert rest[-1]["event"] == "error" and rest[-1]["data"]["code"] == "interrupted"

    messages = httpx.get(f"{nginx.url}/v1/sessions/{sid}").json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 2
    assert messages[1]["status"] == "done"
    assert messages[1]["content"] == "".join(e["data"]["text"] for e in finished_events[1:-1])
    assert messages[3]["id"] == mid and messages[3]["status"] == "error"
    assert messages[3]["content"] == "".join(e["data"]["text"] for e in seen[1:] + rest[:-1])
    # ...and the session goes on, through nginx, on the survivor.
    again = httpx.post(f"{nginx.url}/v1/sessions/{sid}/messages", headers=SSE, timeout=120,
                       json={"content": "Still there?", "params": {"max_tokens": 8}})
    assert check_grammar(parse_frames(again.text))[-1]["event"] == "done"
