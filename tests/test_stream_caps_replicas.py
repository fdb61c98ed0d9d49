"""A key's concurrent streams are capped across two replicas (real service processes on one
real redis-server, each with the scripted engine), given back at once when a stream ends, and
within `LEASE_S` when the replica running it is killed.

What this checks lives in the service and Redis (app/limits/streams.py), not in the engine:
the scripted engine makes a stream that outlasts the checks without costing two engine starts
(about 90 s in CI), and leaves the test client a core of its own. Real-engine runs of this test
twice saw the client itself stalled until the engine's stream ended."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.leases import LEASE_S
from tests.e2e_server import REPO, free_port
from tests.redis_server import RedisServer
from tests.waiting import until_sync

KEY = {"Authorization": "Bearer sk-alice-e2e"}
TOKEN_S = 0.5  # between the scripted tokens: a reply of 100 outlasts every check (50 s)


class Replica:
    """The service with the scripted engine (tests/scripted_server.py), its log in a file."""

    def __init__(self, redis: RedisServer, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "STREAMCHAT_MAX_STREAMS_PER_KEY": "1",
               "STREAMCHAT_API_KEYS": "alice:sk-alice-e2e:chat", "SCRIPTED_DELAY_S": str(TOKEN_S)}
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.scripted_server", str(self.port), "5", redis.url],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + "/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        """SIGKILL: its streams never end, and nobody refreshes their counts."""
        self.process.kill()
        self.process.wait()


@pytest.fixture
def replicas(redis_server: RedisServer, tmp_path: Path) -> Iterator[list[Replica]]:
    redis_server.flush()
    started = [Replica(redis_server, tmp_path / f"replica-{i}.log") for i in (1, 2)]
    try:
        for replica in started:
            until_sync(replica.ready, timeout_s=120)  # seconds when quiet; a busy CI, more
        yield started
    finally:
        for replica in started:
            replica.kill()
    for replica in started:  # no request crashed
        assert b" crashed" not in replica.log.read_bytes(), replica.log.read_text()[-3000:]


def chat(max_tokens: int, **extra: Any) -> dict[str, Any]:
    return {"model": "scripted", "messages": [{"role": "user", "content": "Count to 100."}],
            "max_tokens": max_tokens, **extra}


def refused(replica: Replica) -> None:
    response = httpx.post(replica.url + "/v1/chat/completions", json=chat(1), headers=KEY,
                          timeout=30)
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "too_many_streams"
    assert response.headers["retry-after"] == "1"


def admitted_within(replica: Replica, bound_s: float) -> None:
    """Asks again, as a client told Retry-After would, until the stream is admitted."""
    deadline = time.monotonic() + bound_s
    while True:
        response = httpx.post(replica.url + "/v1/chat/completions", json=chat(1), headers=KEY,
                              timeout=30)
        if response.status_code == 200:
            return
        assert response.json()["error"]["code"] == "too_many_streams", response.text
        assert time.monotonic() < deadline, f"still refused after {bound_s} s"
        time.sleep(0.2)


def long_stream(replica: Replica) -> Any:
    # 100 tokens, TOKEN_S apart: it outlasts the checks made while it runs, and it is
    # cancelled when the test leaves it.
    return httpx.stream("POST", replica.url + "/v1/chat/completions", headers=KEY, timeout=60,
                        json=chat(100, stream=True))


def test_a_keys_concurrent_streams_are_capped_across_two_replicas(
        replicas: list[Replica]) -> None:
    one, two = replicas
    with long_stream(one) as running:
        assert running.status_code == 200
        lines = running.iter_lines()  # held: a generator dropped closes the response
        assert next(lines).startswith("data: ")  # generating on one
        refused(two)  # its stream counts on the other replica too
        refused(one)
    # Left: its generation is cancelled, and every replica sees it ended.
    admitted_within(two, 10)

    with long_stream(one) as running:
        assert running.status_code == 200
        lines = running.iter_lines()
        assert next(lines).startswith("data: ")
        refused(two)
        one.kill()  # its generation never ends: its count runs out once nobody refreshes it
        admitted_within(two, LEASE_S + 10)
