"""End to end behind nginx: deploy/nginx.conf run by the real nginx, in front of two real
replicas sharing one real Redis (tests/replicas.py).

Tokens must come through as they are generated on every transport (a buffering proxy would
hand them over at the end), a conversation's requests must all reach one replica (nginx's
affinity, for its prefix cache), a reply must be resumable through nginx after the replica
generating it is killed, the conversation going on on the other, and the body limit must be
the service's."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
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
TRIES = 3  # replies taken before a stream is called buffered (buffering holds every one)


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


def delivery_problem(tokens: list[Arrival]) -> str | None:
    """What says these tokens were held on the way, or None: as the engine produced them,
    they come spread over many reads and over time."""
    if len(tokens) < STREAM_TOKENS // 2:
        return f"only {len(tokens)} token events"
    reads = [token.read for token in tokens]
    spread = tokens[-1].at - tokens[0].at
    if len(set(reads)) >= len(tokens) // 2 and spread >= MIN_SPREAD_S:
        return None
    per_read = [reads.count(read) for read in sorted(set(reads))]
    return (f"{len(tokens)} token events in {len(per_read)} reads {per_read}, "
            f"first to last in {spread:.3f} s")


def assert_streamed_as_generated(stream_once: Callable[[], list[Arrival]]) -> None:
    """`stream_once` (one reply, its token arrivals) shows no buffering on one of `TRIES`.
    A buffering proxy holds every reply; a reader kept off the CPU for a moment also gets
    tokens together (CI once read 31 in 12 reads), but not every time."""
    problems = []
    for _ in range(TRIES):
        problem = delivery_problem(stream_once())
        if problem is None:
            return
        problems.append(problem)
    raise AssertionError(f"buffered on the way, {TRIES} tries: " + "; ".join(problems))


def new_session(nginx: Nginx) -> str:
    response = httpx.post(nginx.url + "/v1/sessions", json={"system": "Be brief."})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def long_params(max_tokens: int = STREAM_TOKENS) -> dict[str, Any]:
    return {"max_tokens": max_tokens, "ignore_eos": True}


def logged_by(servers: list[LiveServer], request_id: str,
              event: str = "request") -> tuple[LiveServer, dict[str, Any]]:
    """The replica that served the request, and its log line of it (written as the response
    or the WebSocket ends)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for server in servers:
            for record in server.records():
                if record.get("request_id") == request_id and record.get("event") == event:
                    return server, record
        time.sleep(0.1)
    raise AssertionError(f"no replica logged {event} {request_id}")


def request_log_line(servers: list[LiveServer], request_id: str) -> dict[str, Any]:
    return logged_by(servers, request_id)[1]


def new_request_id(label: str) -> str:
    return f"nginx-{label}-{time.monotonic_ns()}"


def test_sse_tokens_come_through_as_generated(nginx: Nginx,
                                              two_replicas: list[LiveServer]) -> None:
    sid = new_session(nginx)

    def stream_once() -> list[Arrival]:
        request_id = new_request_id("e2e")
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
        assert "content-encoding" not in response.headers
        # nginx passed the client's address on, and the replica believed it (127.0.0.1 is in
        # uvicorn's FORWARDED_ALLOW_IPS by default).
        assert request_log_line(two_replicas, request_id)["client"] == "203.0.113.7"
        return [a for a in events if a.event["event"] == "token"]

    assert_streamed_as_generated(stream_once)
    # Without an id of its own, the client gets nginx's ($request_id: 32 hex digits; the
    # service makes 16), the one nginx logged and sent on.
    response = httpx.get(f"{nginx.url}/v1/sessions/{sid}")
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert nginx.logged(f"request_id={response.headers['x-request-id']}")


def test_websocket_tokens_come_through_as_generated(nginx: Nginx,
                                                    two_replicas: list[LiveServer]) -> None:
    sid = new_session(nginx)
    ws_url = nginx.url.replace("http://", "ws://") + f"/v1/sessions/{sid}/ws"

    def stream_once() -> list[Arrival]:
        tokens: list[Arrival] = []
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
        return tokens

    assert_streamed_as_generated(stream_once)


def test_openai_stream_comes_through_as_generated(nginx: Nginx,
                                                  two_replicas: list[LiveServer]) -> None:
    model = httpx.get(nginx.url + "/v1/models").json()["data"][0]["id"]
    body = {"model": model, "messages": [{"role": "user", "content": "Count to fifty."}],
            "stream": True, "stream_options": {"include_usage": True}, **long_params()}

    def stream_once() -> list[Arrival]:
        with httpx.stream("POST", nginx.url + "/v1/chat/completions", json=body,
                          timeout=120) as response:
            assert response.status_code == 200
            chunks = list(arrivals(response.iter_bytes()))
        assert chunks[-1].event["data"] == "[DONE]"
        usage = chunks[-2].event["data"]["usage"]
        assert usage["completion_tokens"] == STREAM_TOKENS
        assert "content-encoding" not in response.headers
        return [c for c in chunks[:-1] if c.event["data"]["choices"] and
                c.event["data"]["choices"][0]["delta"].get("content")]

    assert_streamed_as_generated(stream_once)


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


def test_a_conversations_turns_all_reach_one_replica(nginx: Nginx,
                                                     two_replicas: list[LiveServer]) -> None:
    """The affinity key (deploy/nginx.conf): a session's id in the path on every transport,
    X-Session-Affinity for the stateless calls that carry the history in the body."""
    sid, served = new_session(nginx), []
    for turn in range(3):  # turns over SSE, each a request of its own
        rid = new_request_id(f"turn{turn}")
        reply = httpx.post(f"{nginx.url}/v1/sessions/{sid}/messages", timeout=120,
                           headers={**SSE, "X-Request-ID": rid},
                           json={"content": f"Say {turn}.", "params": {"max_tokens": 4}})
        assert check_grammar(parse_frames(reply.text))[-1]["event"] == "done"
        served.append(logged_by(two_replicas, rid)[0])
    rid = new_request_id("ws")  # ...a turn over the WebSocket...
    ws_url = nginx.url.replace("http://", "ws://") + f"/v1/sessions/{sid}/ws"
    with connect(ws_url, open_timeout=30, additional_headers={"X-Request-ID": rid}) as ws:
        ws.send(json.dumps({"type": "message", "content": "Say ws.",
                            "params": {"max_tokens": 4}}))
        while (frame := json.loads(ws.recv(timeout=120)))["type"] not in ("done", "error"):
            pass
        assert frame["type"] == "done", frame
    served.append(logged_by(two_replicas, rid, "websocket")[0])
    rid = new_request_id("read")  # ...and a read of the history
    assert httpx.get(f"{nginx.url}/v1/sessions/{sid}",
                     headers={"X-Request-ID": rid}).status_code == 200
    served.append(logged_by(two_replicas, rid)[0])
    assert len(set(map(id, served))) == 1, "a session's requests went to several replicas"

    # A Responses chain: previous_response_id changes each turn; the client's conversation id
    # in X-Session-Affinity does not (where each id lands: tests/test_nginx_routing.py).
    model = httpx.get(nginx.url + "/v1/models").json()["data"][0]["id"]
    for conversation in ("conv-a", "conv-b"):
        chain: dict[str, Any] = {}
        served = []
        for turn in range(3):
            rid = new_request_id(f"{conversation}-{turn}")
            response = httpx.post(
                nginx.url + "/v1/responses", timeout=120,
                headers={"X-Session-Affinity": conversation, "X-Request-ID": rid},
                json={"model": model, "input": f"Say {turn}.", "max_output_tokens": 4, **chain})
            assert response.status_code == 200, response.text
            chain = {"previous_response_id": response.json()["id"]}
            served.append(logged_by(two_replicas, rid)[0])
        rid = new_request_id(f"{conversation}-get")  # GET /v1/responses/{id}: with its chain
        assert httpx.get(f"{nginx.url}/v1/responses/{chain['previous_response_id']}", headers={
            "X-Session-Affinity": conversation, "X-Request-ID": rid}).status_code == 200
        served.append(logged_by(two_replicas, rid)[0])
        assert len(set(map(id, served))) == 1, f"{conversation} went to several replicas"


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
    sid, first_id = new_session(nginx), new_request_id("first")
    finished = httpx.post(f"{nginx.url}/v1/sessions/{sid}/messages", timeout=120,
                          headers={**SSE, "X-Request-ID": first_id},
                          json={"content": "Say apple.", "params": {"max_tokens": 8}})
    finished_events = check_grammar(parse_frames(finished.text))
    home = logged_by(two_replicas, first_id)[0]
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
        assert victim is home, "the session's second turn should be on its first turn's replica"
        kill(victim)  # the stream through nginx stays open until nginx sees it die
        with pytest.raises(httpx.TransportError):  # cut short: no terminal event, no last chunk
            for arrival in events:
                if arrival.event["id"] is not None:
                    seen.append(arrival.event)
    assert seen[-1]["event"] == "token"
    last = int(seen[-1]["id"])
    assert [int(e["id"]) for e in seen] == list(range(last + 1))
    # The session's requests through nginx go on: each nginx worker sends them to the dead
    # replica (their place on the ring) until it counts as down, and passes each on to the
    # next replica on the ring, the survivor.
    assert [httpx.get(f"{nginx.url}/v1/sessions/{sid}").status_code
            for _ in range(6)] == [200] * 6
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
    # ...and the session's next turn goes, through nginx, to the survivor, and completes.
    again_id = new_request_id("again")
    again = httpx.post(f"{nginx.url}/v1/sessions/{sid}/messages", timeout=120,
                       headers={**SSE, "X-Request-ID": again_id},
                       json={"content": "Still there?", "params": {"max_tokens": 8}})
    assert check_grammar(parse_frames(again.text))[-1]["event"] == "done"
    assert logged_by([victim, survivor], again_id)[0] is survivor
