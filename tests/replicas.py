"""Two real replicas sharing one real Redis, for the end-to-end tests that need them
(test_e2e_replicas.py, test_e2e_nginx.py, test_e2e_adapters.py, test_e2e_finetune.py...):
started once, on first use, and stopped after the last test of the run that uses them, so that
they are not left beside the other engines.

A test may kill one (`kill`); the next test that asks for `two_replicas` gets it started again
on the same core and port, where a proxy in front of them expects it. A test marked
`leaves_replica_dead` runs after the other tests that use them, so that no engine is started
again after it (one engine start: ~50 s on 2 cores)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app.settings import from_env
from tests.e2e_server import LiveServer, start_server, stop_server
from tests.redis_server import RedisServer

REPLICAS = 2


def replica(redis: RedisServer, core: int, port: int | None = None) -> LiveServer:
    # Each engine gets its own core: two engines on one core measure nothing but contention.
    try:
        return start_server({"STREAMCHAT_REDIS_URL": redis.url,
                             "VLLM_CPU_OMP_THREADS_BIND": str(core),
                             # Fine-tuning and LoRA on, and a cache folder of its own: what
                             # replicas share goes through Redis (test_e2e_adapters.py).
                             "STREAMCHAT_FINE_TUNING": "true",
                             "STREAMCHAT_CACHE_DIR": own_cache(redis, core)}, port=port)
    except RuntimeError as exc:
        pytest.fail(f"could not start replica {core}: {exc}", pytrace=False)


def own_cache(redis: RedisServer, core: int) -> str:
    """The replica's cache folder, its converted default model shared (a link)."""
    cache = Path(redis.dir) / f"replica-{core}"
    cache.mkdir(exist_ok=True)
    if not (cache / "models").exists():
        shared = from_env().cache_dir / "models"  # where the other e2e servers have it
        shared.mkdir(parents=True, exist_ok=True)
        (cache / "models").symlink_to(shared)
    return str(cache)


def port_of(server: LiveServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def kill(server: LiveServer) -> None:
    """SIGKILL the service process alone, as the OOM killer would, and check that its engine
    (its child processes) does not outlive it."""
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.killpg(server.process.pid, 0)  # anyone left in the service's process group?
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(server.process.pid, signal.SIGKILL)
    raise AssertionError("the engine processes outlived the killed service")


class ReplicaPool:
    def __init__(self, redis: RedisServer) -> None:
        self.redis = redis
        self.servers: list[LiveServer] = []  # index = the core its engine is bound to

    def alive(self) -> list[LiveServer]:
        """Every replica running: the missing ones started, the dead ones started again on
        their core and port. The list itself is shared: a test may replace an entry."""
        if not self.servers:
            self.redis.flush()
            # Both at once: an engine's start is mostly one core's imports (121 s for the two
            # one after the other in CI).
            with ThreadPoolExecutor(REPLICAS) as starting:
                started = [starting.submit(replica, self.redis, core) for core in range(REPLICAS)]
            failed = [error for future in started if (error := future.exception()) is not None]
            if failed:  # the one that started is not left running
                for future in started:
                    if future.exception() is None:
                        stop_server(future.result())
                raise failed[0]
            self.servers.extend(future.result() for future in started)
        for core, server in enumerate(self.servers):
            if server.process.poll() is not None:
                self.servers[core] = replica(self.redis, core, port_of(server))
        return self.servers

    def stop(self) -> None:
        for server in self.servers:
            stop_server(server)
        self.servers.clear()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "leaves_replica_dead: kills a replica of the pool and "
                            "leaves it dead (run after the pool's other users)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def uses_pool(item: pytest.Item) -> bool:
        return "replica_pool" in getattr(item, "fixturenames", ())

    last = [item for item in items if item.get_closest_marker("leaves_replica_dead")]
    rest = [item for item in items if item not in last]
    users = [i for i, item in enumerate(rest) if uses_pool(item)]
    at = users[-1] + 1 if users else len(rest)
    items[:] = rest[:at] + last + rest[at:]


@pytest.fixture(scope="session")
def replica_pool(redis_server: RedisServer) -> Iterator[ReplicaPool]:
    pool = ReplicaPool(redis_server)
    try:
        yield pool
    finally:
        pool.stop()


@pytest.fixture
def two_replicas(request: pytest.FixtureRequest,
                 replica_pool: ReplicaPool) -> Iterator[list[LiveServer]]:
    yield replica_pool.alive()
    items = request.session.items
    later = items[items.index(request.node) + 1:]
    if not any("replica_pool" in getattr(item, "fixturenames", ()) for item in later):
        replica_pool.stop()  # the last test that needs them: two engines fewer from here on
