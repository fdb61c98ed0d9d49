"""Per-key limits: requests per minute, generated tokens per minute, concurrent generations.

The minute rates live in token buckets (`buckets.py`), shared by every replica when the
buckets are Redis's. Concurrent generations are counted per replica, in memory, even with
Redis: a global count would need a lease per generation, refreshed by the replica running it
(as replies', streams' and jobs' are, app/leases/), or a crashed replica's would count
forever. So a key may run `max_streams` generations on each replica.
"""

from __future__ import annotations

import math

from app.errors import RateLimited
from app.limits.buckets import TokenBuckets

# What a key at its stream cap is told to wait: a stream may end at any moment.
STREAMS_RETRY_AFTER_S = 1.0


def _retry_in(seconds: float) -> str:
    # Whole seconds, rounded up: retrying at the time said must not be refused again.
    return f"retry in {max(1, math.ceil(seconds))} s"


class KeyLimits:
    """The limits of every key (its owner id). A limit of 0 for `rpm` or `tpm` means none."""

    def __init__(self, buckets: TokenBuckets, *, rpm: int, tpm: int, max_streams: int) -> None:
        if rpm < 0 or tpm < 0 or max_streams < 1:
            raise ValueError(f"need rpm >= 0, tpm >= 0, max_streams >= 1; "
                             f"got {rpm}, {tpm}, {max_streams}")
        self.buckets = buckets
        self.rpm = rpm
        self.tpm = tpm
        self.max_streams = max_streams
        # owner -> generations running on this replica; an owner at 0 is dropped (bounded).
        self._streams: dict[str, int] = {}

    def streams(self, owner: str) -> int:
        return self._streams.get(owner, 0)

    async def admit_request(self, owner: str) -> None:
        """Spend one of the key's requests per minute, or raise RateLimited(rate_limited)."""
        if not self.rpm:
            return
        wait = await self.buckets.take(f"{owner}:rpm", 1.0, self.rpm)
        if wait > 0:
            raise RateLimited(f"rate limit: {self.rpm} requests per minute for this key; "
                              f"{_retry_in(wait)}", retry_after_s=wait, code="rate_limited")

    def _check_streams(self, owner: str) -> None:
        if self.streams(owner) >= self.max_streams:
            raise RateLimited(
                f"too many streams: {self.max_streams} generations at once for this key; "
                f"{_retry_in(STREAMS_RETRY_AFTER_S)} or when one ends",
                retry_after_s=STREAMS_RETRY_AFTER_S, code="too_many_streams")

    async def start_generation(self, owner: str) -> None:
        """Count a generation of `owner`'s, or raise RateLimited: `too_many_streams` at the cap,
        `token_rate_limited` while its tokens-per-minute bucket is spent (empty or below zero).
        Nothing is counted when it raises. Pair each successful call with one `end_generation`.
        """
        # Streams first: refusing at the cap costs no Redis round trip.
        self._check_streams(owner)
        if self.tpm:
            level = await self.buckets.level(f"{owner}:tpm", self.tpm)
            if level < 1:
                wait = (1 - level) * 60.0 / self.tpm
                raise RateLimited(
                    f"token rate limit: {self.tpm} generated tokens per minute for this key; "
                    f"{_retry_in(wait)}", retry_after_s=wait, code="token_rate_limited")
            # Again, with no await before the count: others may have started while we waited.
            self._check_streams(owner)
        self._streams[owner] = self.streams(owner) + 1

    async def end_generation(self, owner: str, tokens: int) -> None:
        """Uncount a generation and charge the `tokens` it generated to the key's tokens per
        minute. The caller guarantees the pairing: exactly once per successful
        `start_generation`, in a `finally`, whether the generation finished, failed or was
        cancelled. The stream is uncounted before the charge's await, so it is given back even
        if the charge is cancelled or Redis fails (that error is raised)."""
        running = self.streams(owner) - 1
        if running > 0:
            self._streams[owner] = running
        else:
            self._streams.pop(owner, None)
        if self.tpm and tokens > 0:
            await self.buckets.charge(f"{owner}:tpm", float(tokens), self.tpm)
