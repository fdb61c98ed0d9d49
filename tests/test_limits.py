"""Per-key limits: the bucket behaviour against memory and a real Redis, then the key rules
(the stream counts under them: test_limits_streams.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from app.errors import RateLimited
from app.limits import KeyLimits, MemoryBuckets, RedisBuckets, RedisStreams, TokenBuckets
from tests.redis_server import RedisServer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    name: str
    buckets: TokenBuckets
    wait: Callable[[float], Awaitable[None]]  # let time pass: the fake clock, or a real sleep


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        clock = FakeClock()

        async def advance(seconds: float) -> None:
            clock.now += seconds

        yield Backend("memory", MemoryBuckets(clock=clock), advance)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    server.flush()
    redis = Redis.from_url(server.url)
    yield Backend("redis", RedisBuckets(redis), asyncio.sleep)
    await redis.aclose()


@pytest.fixture
async def redis_pair(redis_server: RedisServer) -> AsyncIterator[tuple[Redis, Redis]]:
    """Two clients of one Redis: two replicas."""
    redis_server.flush()
    one, two = Redis.from_url(redis_server.url), Redis.from_url(redis_server.url)
    yield one, two
    await one.aclose()
    await two.aclose()


# -- buckets, both backends -------------------------------------------------------------------

async def test_a_full_bucket_allows_a_burst_then_says_how_long_to_wait(backend: Backend) -> None:
    b = backend.buckets
    assert await b.level("k", 60) == 60
    for _ in range(60):
        assert await b.take("k", 1, 60) == 0.0
    wait = await b.take("k", 1, 60)
    # One token at 1 a second; real time passed during the burst on Redis.
    assert 0.5 < wait <= 1.0
    assert await b.take("k", 1, 60) > 0  # a refused take spent nothing, and still refuses
    assert await b.level("k", 60) < 1


async def test_the_wait_is_for_the_cost_asked(backend: Backend) -> None:
    b = backend.buckets
    assert await b.take("k", 60, 60) == 0.0
    wait = await b.take("k", 30, 60)
    assert 29.0 < wait <= 30.0


async def test_a_bucket_refills_at_the_steady_rate(backend: Backend) -> None:
    b = backend.buckets
    assert await b.take("k", 600, 600) == 0.0  # empty now; refills 10 a second
    wait = await b.take("k", 2, 600)
    assert 0.1 < wait <= 0.2
    await backend.wait(wait + 0.05)
    assert await b.take("k", 2, 600) == 0.0
    assert await b.take("k", 2, 600) > 0


async def test_a_bucket_never_refills_past_a_minutes_worth(backend: Backend) -> None:
    b = backend.buckets
    await b.take("k", 1, 600)
    await backend.wait(0.3)
    assert await b.level("k", 600) == 600
    with pytest.raises(ValueError, match="never holds"):
        await b.take("k", 601, 600)


async def test_charge_goes_below_zero_and_take_waits_longer(backend: Backend) -> None:
    b = backend.buckets
    await b.charge("k", 120, 60)
    level = await b.level("k", 60)
    assert -60 <= level < -59
    wait = await b.take("k", 1, 60)
    assert 60 < wait <= 61  # refill past zero, then the one token
    await b.charge("k", 60, 60)  # charges unconditionally, even deeper
    assert await b.take("k", 1, 60) > 120


async def test_keys_are_independent(backend: Backend) -> None:
    b = backend.buckets
    assert await b.take("a", 60, 60) == 0.0
    assert await b.take("a", 1, 60) > 0
    assert await b.take("b", 60, 60) == 0.0
    assert await b.level("c", 60) == 60


# -- Redis only ------------------------------------------------------------------------------

async def test_two_replicas_share_one_bucket(redis_pair: tuple[Redis, Redis]) -> None:
    one, two = RedisBuckets(redis_pair[0]), RedisBuckets(redis_pair[1])
    assert await one.take("k", 40, 60) == 0.0
    assert await two.take("k", 20, 60) == 0.0
    assert await one.take("k", 1, 60) > 0
    await two.charge("k", 60, 60)
    assert await one.level("k", 60) < -59


async def test_redis_keys_expire_about_when_full_again(redis_pair: tuple[Redis, Redis]) -> None:
    redis = redis_pair[0]
    buckets = RedisBuckets(redis)
    await buckets.take("k", 1, 60)  # one token short: full again in 1 s
    ttl = await redis.pttl("sc:rl:k")
    assert 1000 <= ttl <= 2000
    await buckets.charge("k", 120, 60)  # at -61: full again in 121 s
    ttl = await redis.pttl("sc:rl:k")
    assert 121_000 <= ttl <= 122_000
    await buckets.level("other", 60)  # a read stores nothing
    assert not await redis.exists("sc:rl:other")


async def test_an_expired_redis_bucket_reads_full(redis_pair: tuple[Redis, Redis]) -> None:
    buckets = RedisBuckets(redis_pair[0])
    await buckets.take("k", 10, 6000)  # 10 short at 100 a second: full again in 0.1 s
    # And expired 1 s later: Redis's own clock passing is the behaviour, and 1.1 s its least.
    await asyncio.sleep(1.2)
    assert not await redis_pair[0].exists("sc:rl:k")
    assert await buckets.level("k", 6000) == 6000


# -- memory only: bounded --------------------------------------------------------------------

async def test_memory_buckets_stay_bounded_under_many_keys() -> None:
    buckets = MemoryBuckets(max_keys=100, clock=FakeClock())
    for i in range(1000):
        await buckets.charge(f"k{i}", 10, 60)
    assert len(buckets) == 100
    assert await buckets.level("k999", 60) == 50  # the most recent kept
    assert await buckets.level("k0", 60) == 60  # the least recent forgotten: full again


async def test_memory_forgets_buckets_that_are_full_again() -> None:
    clock = FakeClock()
    buckets = MemoryBuckets(clock=clock)
    for i in range(50):
        await buckets.take(f"k{i}", 1, 60)
    assert len(buckets) == 50
    clock.now += 1.0  # each refilled its one token
    await buckets.take("new", 1, 60)
    assert len(buckets) == 1


# -- KeyLimits -------------------------------------------------------------------------------

def limits(rpm: int = 0, tpm: int = 0, max_streams: int = 8) -> tuple[KeyLimits, FakeClock]:
    clock = FakeClock()
    return KeyLimits(MemoryBuckets(clock=clock), rpm=rpm, tpm=tpm, max_streams=max_streams), clock


async def test_rpm_refuses_with_a_retry_after() -> None:
    keys, clock = limits(rpm=2)
    await keys.admit_request("alice")
    await keys.admit_request("alice")
    with pytest.raises(RateLimited) as refused:
        await keys.admit_request("alice")
    assert refused.value.code == "rate_limited"
    assert refused.value.retry_after_s == pytest.approx(30.0)
    assert refused.value.message == "rate limit: 2 requests per minute for this key; retry in 30 s"
    await keys.admit_request("bob")  # another key has its own
    clock.now += 30.0
    await keys.admit_request("alice")


async def test_rpm_zero_means_no_limit() -> None:
    buckets = MemoryBuckets(clock=FakeClock())
    keys = KeyLimits(buckets, rpm=0, tpm=0, max_streams=1)
    for _ in range(1000):
        await keys.admit_request("alice")
    assert len(buckets) == 0  # not even a bucket


async def test_too_many_streams_at_the_cap_then_admitted_after_an_end() -> None:
    keys, _ = limits(max_streams=2)
    await keys.start_generation("alice")
    await keys.start_generation("alice")
    with pytest.raises(RateLimited) as refused:
        await keys.start_generation("alice")
    assert (refused.value.code, refused.value.retry_after_s) == ("too_many_streams", 1.0)
    assert "2 generations at once" in refused.value.message
    assert keys.streams("alice") == 2
    await keys.start_generation("bob")
    await keys.end_generation("alice", 0)
    assert keys.streams("alice") == 1
    await keys.start_generation("alice")
    assert keys.streams("alice") == 2


async def test_tpm_overspent_blocks_the_next_start_until_refill() -> None:
    keys, clock = limits(tpm=60)
    await keys.start_generation("alice")
    await keys.end_generation("alice", 120)  # two minutes' worth: the bucket at -60
    with pytest.raises(RateLimited) as refused:
        await keys.start_generation("alice")
    assert refused.value.code == "token_rate_limited"
    assert refused.value.retry_after_s == pytest.approx(61.0)
    assert "60 generated tokens per minute" in refused.value.message
    assert "retry in 61 s" in refused.value.message
    assert keys.streams("alice") == 0  # a refused start counts nothing
    await keys.start_generation("bob")
    clock.now += 60.0
    with pytest.raises(RateLimited):
        await keys.start_generation("alice")  # back at zero: still empty
    clock.now += 1.0
    await keys.start_generation("alice")


async def test_tpm_zero_means_no_limit() -> None:
    keys, _ = limits(tpm=0)
    await keys.start_generation("alice")
    await keys.end_generation("alice", 10**9)
    await keys.start_generation("alice")


async def test_end_after_a_failed_or_cancelled_generation_uncounts() -> None:
    keys, _ = limits(tpm=60, max_streams=1)
    started = asyncio.Event()

    async def generate(fail: bool) -> None:
        await keys.start_generation("alice")
        tokens = 0
        try:
            tokens = 30
            if fail:
                raise RuntimeError("engine died")
            started.set()
            await asyncio.Event().wait()
        finally:
            await keys.end_generation("alice", tokens)

    with pytest.raises(RuntimeError):
        await generate(fail=True)
    assert keys.streams("alice") == 0
    task = asyncio.create_task(generate(fail=False))
    await started.wait()
    assert keys.streams("alice") == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert keys.streams("alice") == 0
    assert await keys.buckets.level("alice:tpm", 60) == 0  # both charged their 30


class SlowBuckets(MemoryBuckets):
    """Buckets that yield to the loop on each read, as Redis does."""

    async def level(self, key: str, per_minute: float) -> float:
        await asyncio.sleep(0)
        return await super().level(key, per_minute)


async def test_concurrent_starts_never_pass_the_cap() -> None:
    keys = KeyLimits(SlowBuckets(), rpm=0, tpm=1000, max_streams=2)
    results = await asyncio.gather(*(keys.start_generation("alice") for _ in range(5)),
                                   return_exceptions=True)
    refused = [r for r in results if isinstance(r, RateLimited)]
    assert len(refused) == 3 and all(r.code == "too_many_streams" for r in refused)
    assert keys.streams("alice") == 2


async def test_with_redis_rates_and_streams_are_shared(redis_pair: tuple[Redis, Redis]) -> None:
    one, two = (KeyLimits(RedisBuckets(r), rpm=3, tpm=1000, max_streams=1,
                          streams=RedisStreams(r)) for r in redis_pair)
    await one.admit_request("alice")
    await two.admit_request("alice")
    await one.admit_request("alice")
    with pytest.raises(RateLimited) as refused:
        await two.admit_request("alice")
    assert refused.value.code == "rate_limited" and refused.value.retry_after_s > 0
    await one.start_generation("alice")
    with pytest.raises(RateLimited) as refused:
        await two.start_generation("alice")  # the other replica's stream counts here
    assert (refused.value.code, refused.value.retry_after_s) == ("too_many_streams", 1.0)
    assert refused.value.message == ("too many streams: 1 generations at once for this key; "
                                     "retry in 1 s or when one ends")
    await one.end_generation("alice", 0)
    await two.start_generation("alice")  # admitted once it ended
    await two.end_generation("alice", 0)
    await one.start_generation("alice")
    await one.end_generation("alice", 2000)
    with pytest.raises(RateLimited) as refused:
        await one.start_generation("alice")
    assert refused.value.code == "token_rate_limited"
    with pytest.raises(RateLimited) as refused:
        await two.start_generation("alice")  # the other replica's charge counts here
    assert refused.value.code == "token_rate_limited"
    for limits in (one, two):
        await limits.counts.close()
