"""Reply logs mirrored to a real Redis (app/streams/mirror.py): a listener gets an event only
once Redis has it; a Redis that hangs (SIGSTOP) or dies (SIGKILL) stalls listeners no longer
than the mirror's timeout, and once it answers again the logs are caught up and mirrored again.

The faults are done to a redis-server of the test's own, never to the shared one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from app.errors import StoreUnavailable
from app.streams.log import ReplyLog
from app.streams.mirror import Mirror, stream_key
from app.streams.redis import RedisReplyLogs
from tests.redis_server import RedisServer
from tests.waiting import until, until_sync

TIMEOUT_S = 0.3  # the mirror's, in these tests: a hung Redis is given up on after it


class GatedRedis:
    """The real Redis, whose writes (the mirror's one script call per flush) wait for `gate`
    (an acknowledgement that comes when the test says so), and `delay_s` more (a slow Redis)."""

    def __init__(self, redis: Redis, *, delay_s: float = 0.0, opened: bool = False) -> None:
        self.redis = redis
        self.delay_s = delay_s
        self.gate = asyncio.Event()
        if opened:
            self.gate.set()
        self.waiting = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.redis, name)

    async def eval(self, *args: Any) -> Any:
        self.waiting += 1
        await self.gate.wait()
        await asyncio.sleep(self.delay_s)  # a slow Redis is what this stands for
        self.waiting -= 1
        return await self.redis.eval(*args)  # type: ignore[misc]


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server for this test alone: it may be stopped, killed and started again."""
    server = RedisServer()
    yield server
    with contextlib.suppress(ProcessLookupError):
        os.kill(server.process.pid, signal.SIGCONT)
    if server.process.poll() is None:
        server.stop()


def start_again(server: RedisServer) -> None:
    """Start a killed server again, on its port, empty (no persistence)."""
    binary = shutil.which("redis-server")
    assert binary is not None
    server.process = subprocess.Popen(
        [binary, "--port", str(server.port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", server.dir],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def answers() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", server.port), timeout=0.2):
            return True
        return False

    until_sync(answers, timeout_s=10)


async def types_in_redis(redis: Any, message_id: str) -> list[str]:
    return [fields[b"t"].decode() for _, fields in await redis.xrange(stream_key(message_id))]


@contextlib.asynccontextmanager
async def mirror_on(url: str, **options: Any) -> AsyncIterator[tuple[Mirror, Redis]]:
    redis = Redis.from_url(url)
    mirror = Mirror(redis, keep_ms=60_000, **options)
    try:
        yield mirror, redis
    finally:
        await mirror.close()
        await redis.aclose()


def listen(reply_log: ReplyLog, received: list[str]) -> asyncio.Task[None]:
    async def run() -> None:
        async for event in reply_log.follow():
            assert event is not None
            received.append(event.type)

    return asyncio.create_task(run())


async def test_every_event_a_listener_gets_is_already_in_redis(
        redis_server: RedisServer) -> None:
    """The resume gap closed: whatever a client holds, another replica can resume, even from
    a Redis slow to answer."""
    redis_server.flush()
    redis = Redis.from_url(redis_server.url)
    mirror = Mirror(GatedRedis(redis, delay_s=0.002, opened=True), keep_ms=60_000)
    try:
        logs = [ReplyLog(f"m{i}", "s") for i in range(3)]
        for reply_log in logs:
            mirror.attach(reply_log)
        checked: list[int] = []

        async def check(reply_log: ReplyLog) -> None:
            async for event in reply_log.follow():
                assert event is not None
                in_redis: Any = await redis.xrange(stream_key(reply_log.message_id))
                assert len(in_redis) > event.seq, f"{event.seq} reached a listener first"
                checked.append(event.seq)

        listeners = [asyncio.create_task(check(reply_log)) for reply_log in logs]
        for reply_log in logs:
            reply_log.append("start", {})
        for i in range(40):  # an engine step: a token for each log, then the next step
            for reply_log in logs:
                reply_log.append("token", {"text": f"t{i}"})
            await asyncio.sleep(0)
        for reply_log in logs:
            reply_log.append("done", {})
        await asyncio.wait_for(asyncio.gather(*listeners), 10)
        assert len(checked) == 3 * 42
    finally:
        await mirror.close()
        await redis.aclose()


async def test_a_listener_waits_for_the_acknowledgement(redis_server: RedisServer) -> None:
    redis_server.flush()
    redis = Redis.from_url(redis_server.url)
    gated = GatedRedis(redis)
    mirror = Mirror(gated, keep_ms=60_000)
    try:
        reply_log = ReplyLog("slow", "s")
        mirror.attach(reply_log)
        received: list[str] = []
        listener = listen(reply_log, received)
        reply_log.append("start", {})
        reply_log.append("token", {"text": "a"})
        await until(lambda: gated.waiting == 1)  # the flush is sent, its answer held back
        for _ in range(5):
            await asyncio.sleep(0)
        assert received == [] and await types_in_redis(redis, "slow") == []
        gated.gate.set()
        await until(lambda: received == ["start", "token"])
        reply_log.append("done", {})
        await asyncio.wait_for(listener, 5)
        assert await types_in_redis(redis, "slow") == ["start", "token", "done"]
    finally:
        gated.gate.set()
        await mirror.close()
        await redis.aclose()


async def test_a_hung_redis_stalls_listeners_only_until_the_timeout(
        own_redis: RedisServer) -> None:
    """SIGSTOP: Redis accepts and never answers. The log goes on here, unmirrored, and new
    logs do not wait for Redis; after SIGCONT every log is caught up and mirrored again."""
    async with mirror_on(own_redis.url, timeout_s=TIMEOUT_S, retry_s=0.1) as (mirror, redis):
        reply_log = ReplyLog("hung", "s")
        mirror.attach(reply_log)
        received: list[str] = []
        listener = listen(reply_log, received)
        reply_log.append("start", {})
        await until(lambda: received == ["start"])
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        try:
            reply_log.append("token", {"text": "a"})
            reply_log.append("token", {"text": "b"})
            await until(lambda: len(received) == 3)  # bounded: given up after TIMEOUT_S
            assert mirror.behind == 1 and not reply_log.held
            reply_log.append("token", {"text": "c"})  # from now on, at once
            await until(lambda: len(received) == 4)
            opened_meanwhile = ReplyLog("new", "s")
            mirror.attach(opened_meanwhile)
            assert not opened_meanwhile.held
            opened_meanwhile.append("start", {})
        finally:
            os.kill(own_redis.process.pid, signal.SIGCONT)
        await until(lambda: mirror.behind == 0, timeout_s=10)
        assert reply_log.held and opened_meanwhile.held  # mirrored again
        assert await types_in_redis(redis, "hung") == ["start"] + ["token"] * 3
        assert await types_in_redis(redis, "new") == ["start"]
        reply_log.append("done", {})
        await asyncio.wait_for(listener, 5)
        assert await types_in_redis(redis, "hung") == ["start"] + ["token"] * 3 + ["done"]


async def test_a_killed_redis_started_again_empty_gets_whole_logs(
        own_redis: RedisServer) -> None:
    async with mirror_on(own_redis.url, timeout_s=TIMEOUT_S, retry_s=0.1) as (mirror, redis):
        reply_log = ReplyLog("killed", "s")
        mirror.attach(reply_log)
        received: list[str] = []
        listener = listen(reply_log, received)
        reply_log.append("start", {})
        await until(lambda: received == ["start"])
        own_redis.process.kill()
        own_redis.process.wait()
        reply_log.append("token", {"text": "a"})
        await until(lambda: received == ["start", "token"])
        assert mirror.behind == 1
        start_again(own_redis)
        await until(lambda: mirror.behind == 0, timeout_s=10)
        assert await types_in_redis(redis, "killed") == ["start", "token"]
        reply_log.append("done", {})
        await asyncio.wait_for(listener, 5)
        assert await types_in_redis(redis, "killed") == ["start", "token", "done"]


async def test_the_end_of_a_released_log_reaches_its_listeners_through_a_hung_redis(
        own_redis: RedisServer) -> None:
    """A reply's terminal event, held for Redis when Redis hangs, and the writer closed
    meanwhile (shutdown): its listeners still end."""
    redis = Redis.from_url(own_redis.url)
    logs = RedisReplyLogs(redis, _always_live, timeout_s=TIMEOUT_S)
    try:
        reply_log = logs.open("ending", "s")
        received: list[str] = []
        listener = listen(reply_log, received)
        reply_log.append("start", {})
        await until(lambda: received == ["start"])
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        reply_log.append("done", {})
        logs.release("ending")
        await logs.close()
        await asyncio.wait_for(listener, 5)
        assert received == ["start", "done"]
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
        await redis.aclose()


async def test_a_follower_elsewhere_is_told_the_store_is_unavailable(
        own_redis: RedisServer) -> None:
    redis = Redis.from_url(own_redis.url)
    logs = RedisReplyLogs(redis, _always_live, block_ms=100, timeout_s=TIMEOUT_S)
    try:
        await redis.xadd(stream_key("far"), {"t": "start", "d": b"{}"}, id="0-1")
        events = await logs.follow("far", "s")  # generated on another replica
        assert events is not None
        first = await anext(events)
        assert first is not None and first.type == "start"
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(anext(events), 5)
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
        await logs.close()
        await redis.aclose()


async def _always_live(kind: str, lease_id: str, holder: str) -> bool:
    return True
