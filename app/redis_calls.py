"""Every call to Redis, bounded in time and translated in one place: `connect` builds the one
client every Redis-backed store, log, bucket and lease uses (app/backends.py).

A call waits at most `timeout_s` for a connection and as long again for an answer (a Redis
that accepts connections and never answers, SIGSTOPped or wedged, is met by that timeout); a
connection error is retried once, at once (a pooled connection Redis closed when it restarted
reconnects), a timeout never (it already waited). A call that still fails raises
StoreUnavailable (503 `store_unavailable` with Retry-After, app/errors.py), never redis-py's
own errors, and tells the store's health (app/store_health.py), after which calls raise at
once, without waiting, until a ping finds Redis back. Pipelines and subscriptions go through
the same translation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline, PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.store_health import StoreHealth

# Redis does not answer: refused, reset, still loading its data, or no answer in time.
UNREACHABLE: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError,
                                                TimeoutError, OSError)
# Idle pooled connections are pinged before use after this long: one left by a Redis that
# restarted meanwhile is replaced before a call fails on it.
HEALTH_CHECK_S = 10


@contextlib.contextmanager
def reaching(health: StoreHealth, *, guarded: bool = True) -> Iterator[None]:
    """The translation: Redis unreachable -> StoreUnavailable, and the health told. `guarded`:
    refuse at once while the store is known to be unreachable."""
    if guarded:
        health.check()
    try:
        yield
    except UNREACHABLE as exc:
        health.failed(exc)
        raise health.error() from exc


class StoreClient(Redis):
    """redis-py's client, every command through `reaching`."""

    health: StoreHealth

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        with reaching(self.health):
            return await super().execute_command(*args, **options)

    async def ping_unguarded(self) -> None:
        """The health's own ping: tried even while the store is known unreachable, and raising
        redis-py's own errors (the health reads them itself)."""
        await super().execute_command("PING")

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> StorePipeline:
        pipe = StorePipeline(self.connection_pool, self.response_callbacks, transaction,
                             shard_hint)
        pipe.health = self.health
        return pipe

    def pubsub(self, **kwargs: Any) -> StorePubSub:
        pubsub = StorePubSub(self.connection_pool, event_dispatcher=self._event_dispatcher,
                             **kwargs)
        pubsub.health = self.health
        return pubsub


class StorePipeline(Pipeline):
    health: StoreHealth

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        with reaching(self.health):
            return await super().immediate_execute_command(*args, **options)

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        with reaching(self.health):
            return await super().execute(raise_on_error)


class StorePubSub(PubSub):
    health: StoreHealth

    async def execute_command(self, *args: Any) -> Any:
        with reaching(self.health):
            return await super().execute_command(*args)

    async def parse_response(self, block: bool = True, timeout: float = 0) -> Any:  # noqa: ASYNC109
        # Unguarded: a subscription that still answers is kept while other calls time out.
        with reaching(self.health, guarded=False):
            return await super().parse_response(block, timeout)


def connect(url: str, *, timeout_s: float) -> StoreClient:
    """The client for `url`: calls bounded by `timeout_s`, one health for all of them (its
    watcher is started by whoever runs the event loop: `client.health.start()`)."""
    client = cast(StoreClient, StoreClient.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
        health_check_interval=HEALTH_CHECK_S,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))))
    client.health = StoreHealth(client.ping_unguarded)
    return client
