"""Redis fails under a real replica (the scripted engine, served as `python -m app` serves it,
over a real redis-server with an append-only file): SIGKILLed mid-reply and started again,
or SIGSTOPped (it accepts connections and never answers) past the call timeout and continued.

Either way: no 500 and no hang; the reply in flight ends with its terminal event and is stored
once Redis is back; meanwhile what needs Redis answers 503 `store_unavailable` with
Retry-After and `/ready` answers 503; `/ready` answers 200 again once Redis is back, without a
restart; the turn finished before is intact and the session takes a new turn. Each test prints
its timeline (seconds from the fault): never asserted, timing belongs in benchmarks/."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.sessions.redis import RedisSessionStore
from tests.e2e_server import REPO, free_port
from tests.redis_server import RedisServer
from tests.sse_parse import BackgroundStream, check_grammar, parse_frames
from tests.waiting import until_sync

TIMEOUT_S = 1.5  # STREAMCHAT_REDIS_TIMEOUT_S: the least it may be, for a short test
SSE = {"Accept": "text/event-stream"}
REPLY_TOKENS = 100  # the scripted engine's reply: 100 tokens, 30 ms apart (3 s)


class TimedStream(BackgroundStream):
    """A background SSE stream that notes when its terminal event arrived."""

    def __init__(self, client: httpx.Client, url: str, **kwargs: Any) -> None:
        self.ended_at: float | None = None
        self.status: int | None = None
        super().__init__(client, "POST", url, **kwargs)

    def _read(self, client: httpx.Client, method: str, url: str, kwargs: dict[str, Any]) -> None:
        with client.stream(method, url, **kwargs) as response:
            self.status = response.status_code
            for chunk in response.iter_bytes():
                self.body.extend(chunk)
                if b"event: token" in self.body:
                    self.first_token.set()
                if self.ended_at is None and (b"event: done" in self.body
                                              or b"event: error" in self.body):
                    self.ended_at = time.monotonic()


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer(persistent=True)
    yield server
    server.stop()


@pytest.fixture
def replica(redis: RedisServer, tmp_path: Path) -> Iterator[str]:
    """The scripted replica, its log in a file: an outage may log a lot, and a pipe nobody
    reads until the end would fill and stop the server at its next log line."""
    port = free_port()
    with (tmp_path / "replica.log").open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.scripted_server", str(port), "5", redis.url],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "STREAMCHAT_REDIS_TIMEOUT_S": str(TIMEOUT_S),
                 "SCRIPTED_DELAY_S": "0.03"})
    url = f"http://127.0.0.1:{port}"
    try:
        until_sync(lambda: _answers(url + "/ready"), timeout_s=30)
        yield url
    finally:
        process.kill()
        process.wait()
    output = (tmp_path / "replica.log").read_bytes()
    # No request crashed (a 500), no task died unseen.
    assert b" crashed" not in output and b"never retrieved" not in output, output[-3000:]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def turn(http: httpx.Client, url: str, sid: str, content: str) -> list[dict[str, Any]]:
    """A whole turn over SSE: its events, checked."""
    response = http.post(f"{url}/v1/sessions/{sid}/messages", headers=SSE,
                         json={"content": content})
    assert response.status_code == 200, response.text
    return check_grammar(parse_frames(response.content))


def refused(response: httpx.Response) -> None:
    """What needs the store while it is away: 503 store_unavailable with Retry-After."""
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.json()["error"]["code"] == "store_unavailable"
    assert int(response.headers["retry-after"]) >= 1


def stored(redis: RedisServer, sid: str) -> list[dict[str, Any]]:
    """The session's messages as Redis has them."""

    async def read() -> list[dict[str, Any]]:
        store = RedisSessionStore(Redis.from_url(redis.url))
        try:
            session = await store.get(sid)
            return [] if session is None else [m.to_dict() for m in session.messages]
        finally:
            await store.close()

    return asyncio.run(read())


def ready(url: str) -> int:
    return httpx.get(url + "/ready", timeout=10).status_code


def outage(redis: RedisServer, url: str, fault: str) -> None:
    http = httpx.Client(timeout=30)
    sid = http.post(url + "/v1/sessions").json()["id"]
    first = turn(http, url, sid, "before")
    assert first[-1]["event"] == "done"
    stream = TimedStream(http, f"{url}/v1/sessions/{sid}/messages", headers=SSE,
                         json={"content": "during"})
    assert stream.first_token.wait(10)
    timeline: dict[str, float] = {}

    fault_at = time.monotonic()
    if fault == "kill":
        redis.kill()
    else:
        redis.pause()
    other = httpx.Client(timeout=30)  # its own connections: the stream holds one
    answered = other.post(url + "/v1/sessions")
    timeline["first 503 (POST /v1/sessions)"] = time.monotonic() - fault_at
    refused(answered)
    # The same connection serves the next request (the 503 closed nothing).
    refused(other.get(f"{url}/v1/sessions/{sid}"))
    timeline["next 503 (GET the session, same connection)"] = time.monotonic() - fault_at
    until_sync(lambda: ready(url) == 503, timeout_s=10)
    timeline["/ready 503 (asked after those)"] = time.monotonic() - fault_at
    # What needs no Redis goes on: a stateless completion, the metrics.
    completion = other.post(url + "/v1/chat/completions", json={
        "model": "scripted", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    assert completion.status_code == 200, completion.text
    assert completion.json()["choices"][0]["message"]["content"] == "ww"
    assert other.get(url + "/metrics").status_code == 200

    events = check_grammar(stream.events(30))
    assert stream.status == 200 and stream.ended_at is not None
    timeline["terminal event"] = stream.ended_at - fault_at
    # It finished: every token reached its client, then `done` (its message is stored later).
    assert events[-1]["event"] == "done", events[-1]
    assert len(events) == REPLY_TOKENS + 2
    assert ready(url) == 503  # still away

    if fault == "kill":
        back_at = time.monotonic()
        redis.start()  # same port, same folder: its append-only file has what it had
    else:
        # Time passing is the behaviour: hung longer than a call may wait (TIMEOUT_S).
        time.sleep(max(0.0, fault_at + 2 * TIMEOUT_S - time.monotonic()))
        back_at = time.monotonic()
        redis.resume()
    until_sync(lambda: ready(url) == 200, timeout_s=15)
    timeline["/ready 200 again, from Redis's return"] = time.monotonic() - back_at

    # In Redis itself: the replica's own answer shows the reply ended before it is stored.
    until_sync(lambda: stored(redis, sid)[-1]["status"] == "done", 15)
    timeline["the reply stored, from Redis's return"] = time.monotonic() - back_at
    messages = stored(redis, sid)
    assert [m["content"] for m in messages[:2]] == ["before", "".join(
        e["data"]["text"] for e in first if e["event"] == "token")]
    assert messages[2]["content"] == "during"
    assert messages[3]["content"] == "".join(e["data"]["text"] for e in events
                                            if e["event"] == "token")
    assert messages[3]["id"] == events[0]["data"]["message_id"] and len(messages) == 4
    # The session takes a new turn; new sessions are made again.
    until_sync(lambda: other.post(f"{url}/v1/sessions/{sid}/messages", headers=SSE,
                                  json={"content": "after"}).status_code == 200, 20)
    assert other.post(url + "/v1/sessions").status_code == 201
    print(f"\nRedis {fault}: " + "; ".join(f"{k} {v:.2f} s" for k, v in timeline.items()))
    http.close()
    other.close()


def test_redis_killed_mid_reply_then_started_again(redis: RedisServer, replica: str) -> None:
    outage(redis, replica, "kill")


def test_redis_hung_mid_reply_past_the_call_timeout(redis: RedisServer, replica: str) -> None:
    outage(redis, replica, "stop")
