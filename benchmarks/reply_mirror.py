"""`python -m benchmarks.reply_mirror`: what holding events until Redis has them costs.

A reply log mirrored to Redis (app/streams/mirror.py) shows an event to its listeners only once
Redis acknowledged it, so a client never holds an event another replica could not resume. This
measures the latency that adds, in-process, with a real redis-server on loopback and no engine:
S logs, each followed by one listener; every step appends one token event to each log in the
same loop tick (an engine step for S streams), then waits `--interval-ms`. The latency of an
event is the time from its append to its listener getting it. Memory mode (no mirror: published
at once) is the baseline; the difference is what the mirror adds, one round trip per flush
(batched per step, not per event). Also reported: flushes, events per flush, and the process's
CPU time per event (the writes themselves were there before the hold; the hold adds none).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from redis.asyncio import Redis

from app.streams.log import ReplyLog
from app.streams.mirror import Mirror
from benchmarks.output import environment, timestamp, write_results

# memory: no mirror; unheld: mirrored, listeners not waiting (before the hold); mirror: held.
MODES = ("memory", "unheld", "mirror")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 100, 1000],
                        help="logs written at once, one run each (default: 1 100 1000)")
    parser.add_argument("--steps", type=int, default=200, help="token events per log (200)")
    parser.add_argument("--interval-ms", type=float, default=20.0,
                        help="time between two steps (default: 20, i.e. 50 tokens/s a stream)")
    parser.add_argument("--redis-url", default=None,
                        help="a Redis to use (default: a redis-server started on a free port)")


def _start_redis() -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", tempfile.mkdtemp()],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("redis-server did not start")


class CountingMirror(Mirror):
    """The mirror, counting its flushes; with `hold` False, as before the hold: listeners
    see each event at once, the mirror writes it in the background."""

    flushes = 0
    hold = True

    def _mirror(self, reply_log: ReplyLog) -> None:
        super()._mirror(reply_log)
        reply_log.held = self.hold

    async def _send(self, batch: list[Any]) -> None:
        self.flushes += 1
        await super()._send(batch)


async def run(streams: int, steps: int, interval_s: float, redis: Redis | None,
              hold: bool = True) -> dict[str, Any]:
    mirror = None if redis is None else CountingMirror(redis, keep_ms=60_000)
    if mirror is not None:
        mirror.hold = hold
    logs = [ReplyLog(f"bench-{streams}-{i}-{time.monotonic_ns()}", "s") for i in range(streams)]
    for reply_log in logs:
        if mirror is not None:
            mirror.attach(reply_log)
    appended: list[list[float]] = [[] for _ in logs]
    latencies: list[float] = []

    async def listen(i: int) -> None:
        async for event in logs[i].follow():
            assert event is not None
            latencies.append(time.perf_counter() - appended[i][event.seq])

    listeners = [asyncio.create_task(listen(i)) for i in range(streams)]
    await asyncio.sleep(0.05)
    cpu = time.process_time()
    for step in range(steps + 2):
        for i, reply_log in enumerate(logs):
            appended[i].append(time.perf_counter())
            if step == 0:
                reply_log.append("start", {"message_id": reply_log.message_id})
            elif step <= steps:
                reply_log.append("token", {"text": f" word{step}", "n": 1})
            else:
                reply_log.append("done", {"finish_reason": "length"})
        await asyncio.sleep(interval_s)
    await asyncio.wait_for(asyncio.gather(*listeners), 30)
    cpu = time.process_time() - cpu
    if mirror is not None:
        for reply_log in logs:
            mirror.detach(reply_log.message_id)  # ended, as a reply's log is released
        await mirror.close()
    ms = sorted(x * 1000 for x in latencies)
    events = len(ms)
    return {"streams": streams, "events": events,
            "latency_ms": {"p50": statistics.median(ms), "p90": ms[int(events * 0.9)],
                           "p99": ms[int(events * 0.99)], "max": ms[-1]},
            "flushes": None if mirror is None else mirror.flushes,
            "events_per_flush": None if mirror is None else events / max(mirror.flushes, 1),
            "cpu_us_per_event": cpu / events * 1e6}


def report(out: dict[str, Any]) -> str:
    lines = [f"{'streams':>7} {'mode':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
             f"{'max ms':>8} {'ev/flush':>9} {'CPU us/ev':>10}"]
    for row in out["results"]:
        for mode in MODES:
            r = row[mode]
            lat = r["latency_ms"]
            per_flush = "-" if r["events_per_flush"] is None else f"{r['events_per_flush']:.0f}"
            lines.append(f"{r['streams']:>7} {mode:>7} {lat['p50']:>8.3f} {lat['p90']:>8.3f} "
                         f"{lat['p99']:>8.3f} {lat['max']:>8.3f} {per_flush:>9} "
                         f"{r['cpu_us_per_event']:>10.1f}")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    process, url = (None, args.redis_url) if args.redis_url else _start_redis()
    redis = Redis.from_url(url)
    try:
        rows = []
        for streams in args.streams:
            interval_s = args.interval_ms / 1000
            rows.append({"memory": await run(streams, args.steps, interval_s, None),
                         "unheld": await run(streams, args.steps, interval_s, redis, False),
                         "mirror": await run(streams, args.steps, interval_s, redis)})
    finally:
        await redis.aclose()
        if process is not None:
            process.terminate()
            process.wait()
    stamp = timestamp()
    out = {"timestamp": stamp, "environment": environment(), "results": rows,
           "config": {"steps": args.steps, "interval_ms": args.interval_ms}}
    print(report(out))
    print(f"\nresults: {write_results(stamp, out, 'reply-mirror')}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reply_mirror",
                                     description=__doc__)
    add_arguments(parser)
    sys.exit(asyncio.run(main(parser.parse_args())))
