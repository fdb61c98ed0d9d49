"""End to end: a key's concurrent streams are capped across two replicas (real service
processes and engines, one real redis-server), given back at once when a stream ends, and
within `LEASE_S` when the replica running it is killed.

The cap applies to keys, so these replicas have keys, unlike the shared pool's
(tests/replicas.py): the pool is stopped first, so that no more than two engines run at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from app.leases import LEASE_S
from tests.e2e_server import LiveServer, start_server, stop_server
from tests.redis_server import RedisServer
from tests.replicas import ReplicaPool, kill

pytestmark = pytest.mark.e2e
KEY = {"Authorization": "Bearer sk-alice-e2e"}


def chat(max_tokens: int, **extra: Any) -> dict[str, Any]:
    return {"model": "open-autoglm", "messages": [{"role": "user", "content": "Count to 100."}],
            "max_tokens": max_tokens, **extra}


@pytest.fixture(scope="module")
def keyed_replicas(request: pytest.FixtureRequest,
                   redis_server: RedisServer) -> Iterator[list[LiveServer]]:
    # Asked for here, not named: a test naming the pool counts as its user, and the pool's
    # last users (tests/replicas.py) would be ordered after this one, starting it again.
    pool: ReplicaPool = request.getfixturevalue("replica_pool")
    pool.stop()
    redis_server.flush()
    env = {"STREAMCHAT_REDIS_URL": redis_server.url, "STREAMCHAT_MAX_STREAMS_PER_KEY": "1",
           "STREAMCHAT_API_KEYS": "alice:sk-alice-e2e:chat"}

    def start(core: int) -> LiveServer:  # each engine on its own core, as the pool's
        return start_server({**env, "VLLM_CPU_OMP_THREADS_BIND": str(core)})

    with ThreadPoolExecutor(2) as pool:
        starting = [pool.submit(start, core) for core in (0, 1)]
        servers = [future.result() for future in starting]
    try:
        yield servers
    finally:
        for server in servers:
            stop_server(server)


def refused(server: LiveServer) -> None:
    response = httpx.post(server.url + "/v1/chat/completions", json=chat(1), headers=KEY,
                          timeout=30)
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "too_many_streams"
    assert response.headers["retry-after"] == "1"


def admitted_within(server: LiveServer, bound_s: float) -> None:
    """Asks again, as a client told Retry-After would, until the stream is admitted."""
    deadline = time.monotonic() + bound_s
    while True:
        response = httpx.post(server.url + "/v1/chat/completions", json=chat(1), headers=KEY,
                              timeout=30)
        if response.status_code == 200:
            return
        assert response.json()["error"]["code"] == "too_many_streams", response.text
        assert time.monotonic() < deadline, f"still refused after {bound_s} s"
        time.sleep(0.2)


def long_stream(server: LiveServer) -> Any:
    # As long as the context allows: it must outlast the checks made while it runs, and it is
    # cancelled when the test leaves it. 400 tokens took 55 s in one CI run (1 core, fp32),
    # and ended before a check made in that run.
    return httpx.stream("POST", server.url + "/v1/chat/completions", headers=KEY, timeout=60,
                        json=chat(1900, stream=True, ignore_eos=True))


def test_a_keys_concurrent_streams_are_capped_across_two_replicas(
        keyed_replicas: list[LiveServer]) -> None:
    one, two = keyed_replicas
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
        kill(one)  # its generation never ends: its count runs out once nobody refreshes it
        admitted_within(two, LEASE_S + 10)
