"""Per-key limits: requests per minute, generated tokens per minute, concurrent generations.

The minute rates live in token buckets (`buckets.py`), the concurrent generations in stream
counts (`streams.py`); both are shared by every replica when they are Redis's, and both fail
open while Redis is unreachable (each replica then holds each key to `max_streams` by its own
count).
"""

from __future__ import annotations

import math

from app.errors import RateLimited
from app.limits.buckets import TokenBuckets
from app.limits.streams import MemoryStreams, StreamCounts

# What a key at its stream cap is told to wait: a stream may end at any moment.
STREAMS_RETRY_AFTER_S = 1.0


def _retry_in(seconds: float) -> str:
    # Whole seconds, rounded up: retrying at the time said must not be refused again.
    return f"retry in {max(1, math.ceil(seconds))} s"


class KeyLimits:
    """The limits of every key (its owner id). A limit of 0 for `rpm` or `tpm` means none."""

    def __init__(self, buckets: TokenBuckets, *, rpm: int, tpm: int, max_streams: int,
                 streams: StreamCounts | None = None) -> None:
        if rpm < 0 or tpm < 0 or max_streams < 1:
            raise ValueError(f"need rpm >= 0, tpm >= 0, max_streams >= 1; "
                             f"got {rpm}, {tpm}, {max_streams}")
        self.buckets = buckets
        self.rpm = rpm
        self.tpm = tpm
        self.max_streams = max_streams
        self.counts = streams if streams is not None else MemoryStreams()

    def streams(self, owner: str) -> int:
        """`owner`'s generations running on this replica."""
        return self.counts.here(owner)

    async def admit_request(self, owner: str) -> None:
        """Spend one of the key's requests per minute, or raise RateLimited(rate_limited)."""
        if not self.rpm:
            return
        wait = await self.buckets.take(f"{owner}:rpm", 1.0, self.rpm)
        if wait > 0:
            raise RateLimited(f"rate limit: {self.rpm} requests per minute for this key; "
                              f"{_retry_in(wait)}", retry_after_s=wait, code="rate_limited")

    def _too_many_streams(self) -> RateLimited:
        return RateLimited(
            f"too many streams: {self.max_streams} generations at once for this key; "
            f"{_retry_in(STREAMS_RETRY_AFTER_S)} or when one ends",
            retry_after_s=STREAMS_RETRY_AFTER_S, code="too_many_streams")

    async def start_generation(self, owner: str) -> None:
        """Count a generation of `owner`'s, or raise RateLimited: `too_many_streams` at the cap,
        `token_rate_limited` while its tokens-per-minute bucket is spent (empty or below zero).
        Nothing is counted when it raises. Pair each successful call with one `end_generation`.
        """
        # Streams first: at the cap on this replica is at the cap on all of them, refused
        # with no Redis round trip.
        if self.streams(owner) >= self.max_streams:
            raise self._too_many_streams()
        if self.tpm:
            level = await self.buckets.level(f"{owner}:tpm", self.tpm)
            if level < 1:
                wait = (1 - level) * 60.0 / self.tpm
                raise RateLimited(
                    f"token rate limit: {self.tpm} generated tokens per minute for this key; "
                    f"{_retry_in(wait)}", retry_after_s=wait, code="token_rate_limited")
        # Checked and counted in one step (one Lua script with Redis): others may have
        # started while we waited, here or on another replica.
        if not await self.counts.start(owner, self.max_streams):
            raise self._too_many_streams()

    async def end_generation(self, owner: str, tokens: int) -> None:
        """Uncount a generation and charge the `tokens` it generated to the key's tokens per
        minute. The caller guarantees the pairing: exactly once per successful
        `start_generation`, in a `finally`, whether the generation finished, failed or was
        cancelled. The stream is uncounted here before any await, so it is given back even if
        this call is cancelled or Redis fails (that error is raised); other replicas are told
        meanwhile (by the time it returns, unless cancelled: then they are told anyway, or
        the count runs out by itself)."""
        told = self.counts.end(owner)
        try:
            if self.tpm and tokens > 0:
                await self.buckets.charge(f"{owner}:tpm", float(tokens), self.tpm)
        finally:
            await told
