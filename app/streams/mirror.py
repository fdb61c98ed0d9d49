"""A replica's reply logs mirrored to Redis Streams, and when their listeners see an event.

Every event appended to a mirrored log (a `held` one, app/streams/log.py) is queued; the writer
sends what is queued at each wake-up, every log's events together, as one script call (an engine
step's tokens for every stream: one command, one round trip), and publishes them to the logs'
listeners once Redis acknowledged them. So a client never holds an event that another replica
cannot resume after this one died: it is in Redis before the client gets it. The cost is that
round trip per flush, measured in-process (benchmarks/reply_mirror.py, 20 tokens/s a stream,
p50 over the same run without the hold): +0.7 ms for 1 stream, +2 ms at 100, +15 ms at 1,000.

Redis may fail: down, or hung (SIGSTOP: it accepts and never answers). A flush not acknowledged
within `timeout_s` does not stall anyone further: every mirrored log falls *behind*, its
listeners see every event at once from then on (as with logs in memory), and a log opened
meanwhile starts behind. The writer tries the logs behind again every `retry_s`; once Redis
answers, it reads where each stream ends and one script per log adds what it lacks (never
twice: what reached Redis before the timeout, or after it, is skipped; all of it for a Redis
restarted empty), and the log is mirrored again, held as before. A replica that dies while its
log is behind takes that log's unmirrored tail with it (docs/API.md, Resuming).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from app.streams.log import Event, ReplyLog
from app.streams.scripts import CATCH_UP, WRITE
from app.tasks import STOP_BOUND_S, cancel_and_wait

log = logging.getLogger("streamchat.streams")

PREFIX = "sc:"
TIMEOUT_S = 2.0  # a flush not acknowledged by then: Redis is down or hung (~0.2 ms on loopback)
RETRY_S = 1.0  # how often logs behind are tried again while Redis does not answer
MAX_BEHIND = 256  # logs kept to be caught up (an outage that lasts): the oldest given up first

def stream_key(message_id: str) -> str:
    return f"{PREFIX}r:{message_id}"


def progress_key(message_id: str) -> str:
    return f"{PREFIX}p:{message_id}"


class Mirror:
    def __init__(self, redis: Any, *, keep_ms: int, timeout_s: float = TIMEOUT_S,
                 retry_s: float = RETRY_S, max_behind: int = MAX_BEHIND) -> None:
        self.redis = redis
        self.keep_ms = keep_ms
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.max_behind = max_behind
        self._mirrored: dict[str, ReplyLog] = {}  # open logs whose listeners wait for Redis
        self._behind: dict[str, ReplyLog] = {}  # logs to catch up once Redis answers: oldest first
        self._queue: list[tuple[ReplyLog, Event]] = []
        self._inflight: list[tuple[ReplyLog, Event]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # the writer waits, with nothing queued
        self._task: asyncio.Task[None] | None = None

    @property
    def behind(self) -> int:
        """How many logs wait for Redis to take them again (0: every log is mirrored)."""
        return len(self._behind)

    def attach(self, reply_log: ReplyLog) -> None:
        """Mirror a new log; its listeners see its events once Redis has them."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="reply-log-mirror")
        if self._behind:  # Redis failed and has not answered since: do not wait for it
            self._fall_behind([reply_log])
        else:
            self._mirror(reply_log)

    def detach(self, message_id: str) -> None:
        """The log ended: what it queued is still written (and published)."""
        reply_log = self._mirrored.pop(message_id, None)
        if reply_log is not None and reply_log.finished:  # no cycle left for the collector
            reply_log.on_append = reply_log.on_progress = None

    def _mirror(self, reply_log: ReplyLog) -> None:
        if reply_log.finished:
            return  # nothing more to write
        reply_log.held = True
        reply_log.on_append = reply_log.on_progress = lambda event: self._enqueue(reply_log, event)
        self._mirrored[reply_log.message_id] = reply_log

    def _enqueue(self, reply_log: ReplyLog, event: Event) -> None:
        self._queue.append((reply_log, event))
        self._idle.clear()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
            if self._behind:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.retry_s):
                        await self._wake.wait()
            else:
                await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            if batch:
                await self._flush(batch)
            if self._behind:
                await self._catch_up()

    async def _flush(self, batch: list[tuple[ReplyLog, Event]]) -> None:
        self._inflight = batch  # held for Redis, as the queue is
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._send(batch)
        except Exception as exc:  # timed out, refused, dropped: nobody waits for Redis now
            log.warning("Redis did not take %d reply events within %.1f s (%r): reply logs go "
                        "on unmirrored until it answers", len(batch), self.timeout_s, exc)
            self._give_up_waiting()
            self._inflight = []
            return
        self._inflight = []
        for reply_log, event in batch:
            if event.numbered:
                reply_log.publish(event.seq + 1)

    async def _send(self, batch: list[tuple[ReplyLog, Event]]) -> None:
        keys: list[str] = []
        args: list[Any] = [self.keep_ms]
        for reply_log, event in batch:
            message_id = reply_log.message_id
            keys += (f"{PREFIX}r:{message_id}", f"{PREFIX}p:{message_id}")
            args += (event.seq, b"1" if event.terminal else b"0", event.type, event.payload)
        await self.redis.eval(WRITE, len(keys), *keys, *args)

    def _give_up_waiting(self) -> None:
        """Redis did not answer in time: every log held for it falls behind."""
        self._fall_behind([item[0] for item in self._inflight + self._queue]
                          + list(self._mirrored.values()))

    def _fall_behind(self, logs: list[ReplyLog]) -> None:
        """Stop holding `logs`' listeners for Redis: each event reaches them at once, and
        the writer catches their streams up once Redis answers."""
        fallen = {id(reply_log) for reply_log in logs}
        self._queue = [item for item in self._queue if id(item[0]) not in fallen]
        for reply_log in logs:
            message_id = reply_log.message_id
            self._mirrored.pop(message_id, None)
            if message_id in self._behind or (reply_log.finished and reply_log.held and
                                              reply_log.published == len(reply_log.events)):
                continue  # waiting already, or Redis has all of it
            reply_log.held = False
            reply_log.on_append = reply_log.on_progress = None
            reply_log.publish()
            self._behind[message_id] = reply_log
        given_up = list(self._behind)[:max(0, len(self._behind) - self.max_behind)]
        for message_id in given_up:
            del self._behind[message_id]
        if given_up:
            log.warning("%d reply logs stay unmirrored (more than %d wait for Redis), the "
                        "oldest: %s", len(given_up), self.max_behind, given_up[0])

    async def _catch_up(self) -> None:
        """Add what each log behind lacks in Redis; mirror again those that caught up."""
        behind = list(self._behind.items())
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for message_id, _ in behind:
                        pipe.xrevrange(stream_key(message_id), count=1)
                    tops = await pipe.execute()
                sent = []
                async with self.redis.pipeline(transaction=False) as pipe:
                    for (message_id, reply_log), top in zip(behind, tops, strict=True):
                        have, upto = (entry_seq(top[0][0]) + 1 if top else 0), len(reply_log.events)
                        args: list[Any] = [self.keep_ms, have]
                        for event in reply_log.events[have:upto]:
                            args += [event.type, event.payload]
                        pipe.eval(CATCH_UP, 2, stream_key(message_id), progress_key(message_id),
                                  *args)
                        sent.append((message_id, reply_log, upto))
                    results = await pipe.execute(raise_on_error=False)
        except Exception:  # still down: try again in `retry_s`, and nobody waits for it
            self._give_up_waiting()
            return
        for (message_id, reply_log, upto), result in zip(sent, results, strict=True):
            if message_id not in self._behind:
                continue  # given up meanwhile
            if isinstance(result, Exception):  # Redis answered, and refused it: leave it
                log.warning("reply %s: Redis refused its log (%s)", message_id, result)
                del self._behind[message_id]
            elif len(reply_log.events) > upto:  # more came meanwhile: the next round, now
                self._wake.set()
            else:
                del self._behind[message_id]
                self._mirror(reply_log)
        if not self._behind:
            log.info("Redis answers again: every reply log is mirrored")

    async def close(self) -> None:
        """Let the writer write what is queued (each flush bounded by `timeout_s`), then stop
        it: no listener is left held for Redis."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2 * self.timeout_s):
                    await self._idle.wait()
            await cancel_and_wait(self._task, bound_s=STOP_BOUND_S)
        self._give_up_waiting()


def entry_seq(entry_id: bytes | str) -> int:
    """A stream entry's event seq: entry ids are `0-{seq+1}`."""
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(raw.split("-")[1]) - 1
