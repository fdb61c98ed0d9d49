"""The served process (app/server.py): SIGTERM drains instead of dropping the listener, and an
idle connection stays open longer than its client keeps it."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.sessions.redis import RedisSessionStore
from tests.e2e_server import REPO, free_port
from tests.redis_server import RedisServer
from tests.sse_parse import BackgroundStream, check_grammar, parse_frames
from tests.waiting import until_sync

SSE = {"Accept": "text/event-stream"}


def scripted_server(*args: str, env: dict[str, str] | None = None, ready: bool = True
                    ) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m tests.scripted_server PORT *args`, ready (or, with ready=False, serving while
    its engine loads); env: more STREAMCHAT_* settings."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tests.scripted_server", str(port), *args],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    # Seconds when quiet; a busy 2-core machine took over 30 s to import a reasoning parser.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + ("/ready" if ready else "/health"), timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        process.kill()
        process.wait()
        pytest.fail(f"the scripted server did not start: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
    return process, url


def stop(process: subprocess.Popen[bytes]) -> bytes:
    """Its output, once it has exited (killed if still running)."""
    if process.poll() is None:
        process.kill()
    out, _ = process.communicate()
    return out


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    process, url = scripted_server("30")
    yield process, url
    stop(process)


def test_sigterm_says_not_ready_at_once_and_lets_streams_finish(
        server: tuple[subprocess.Popen[bytes], str]) -> None:
    """Issue 7, bug 2: from the moment SIGTERM arrives, /ready answers 503 (on a new
    connection: the listener stays open) and new generations get 503 with Retry-After, while
    the reply in flight streams to its end; then the process exits by itself, code 0."""
    process, url = server
    sid = httpx.post(url + "/v1/sessions").json()["id"]
    other = httpx.post(url + "/v1/sessions").json()["id"]
    http = httpx.Client(timeout=30)
    stream = BackgroundStream(http, "POST", f"{url}/v1/sessions/{sid}/messages", headers=SSE,
                              json={"content": "go"})
    assert stream.first_token.wait(10)
    os.kill(process.pid, signal.SIGTERM)
    # The signal is handled between two of the server's event-loop steps: from then on.
    until_sync(lambda: httpx.get(url + "/ready", timeout=5).status_code == 503)

    ready = httpx.get(url + "/ready", timeout=5)
    assert ready.status_code == 503 and ready.headers["retry-after"]
    assert ready.json()["error"]["message"] == "not ready: draining"
    refused = httpx.post(f"{url}/v1/sessions/{other}/messages", json={"content": "x"}, timeout=5)
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert refused.json()["error"]["code"] == "not_ready"
    assert httpx.get(url + "/health", timeout=5).status_code == 200
    assert stream.running, "the reply should still be streaming"

    events: list[dict[str, Any]] = check_grammar(stream.events(30))
    http.close()
    assert events[-1]["event"] == "done" and events[-1]["data"]["finish_reason"] == "stop"
    assert len(events) == 102
    assert process.wait(15) == 0
    messages = [json.loads(line).get("message") for line in stop(process).splitlines()
                if line.startswith(b"{")]
    drain = [m for m in messages if m is not None and m.startswith(("SIGTERM", "drain"))]
    assert drain[0] == "SIGTERM: draining 1 generation(s); /ready answers 503", messages
    assert drain[-1] == "drained; stopping", messages


def test_at_the_drain_timeout_streams_end_with_an_error_and_replies_are_stored_cancelled(
        redis_server: RedisServer) -> None:
    redis_server.flush()
    process, url = scripted_server("0.5", redis_server.url)
    try:
        sid = httpx.post(url + "/v1/sessions").json()["id"]
        with httpx.stream("POST", f"{url}/v1/sessions/{sid}/messages", headers=SSE,
                          json={"content": "go"}, timeout=30) as response:
            body, signalled = bytearray(), False
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if b"event: token" in body and not signalled:
                    os.kill(process.pid, signal.SIGTERM)
                    signalled = True
        events = check_grammar(parse_frames(bytes(body)))
        assert events[-1]["event"] == "error", (len(events), events[-1])
        assert events[-1]["data"]["code"] == "shutting_down"
        assert len(events) < 102  # stopped, not finished
        assert process.wait(15) == 0
    finally:
        output = stop(process)

    async def stored() -> Any:
        store = RedisSessionStore(Redis.from_url(redis_server.url))
        try:
            return await store.get(sid)
        finally:
            await store.close()

    reply = asyncio.run(stored()).messages[-1]
    assert reply.status == "cancelled" and reply.content == "w" * (len(events) - 2)
    assert reply.error["code"] == "shutting_down"
    lines = [json.loads(line) for line in output.splitlines() if line.startswith(b"{")]
    streams = [line for line in lines if line.get("event") == "stream"]
    assert [s["outcome"] for s in streams] == ["cancelled"]
    assert streams[0]["session_id"] == sid and "content" not in streams[0]


def test_an_idle_connection_outlives_the_clients_own_keep_alive(
        server: tuple[subprocess.Popen[bytes], str]) -> None:
    """A connection idle past httpx's 5 s keep-alive (the openai SDK's) is still open, so the
    client, not the server, closes it: no request is sent on a connection being closed."""
    _, url = server
    idle_s = httpx.Limits().keepalive_expiry
    assert idle_s is not None
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)

    def healthy() -> bool:  # the whole response read: the connection is free for the next
        connection.request("GET", "/health")
        response = connection.getresponse()  # RemoteDisconnected had the server closed it
        return response.status == 200 and response.read() == b'{"status":"ok"}'

    try:
        assert healthy()
        opened = connection.sock
        time.sleep(idle_s + 1)  # the idle time is what is tested
        assert healthy() and connection.sock is opened  # on the same connection
    finally:
        connection.close()
