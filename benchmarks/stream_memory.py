"""Memory under steady streaming: the server's RSS against the token events it delivered.

The real app on the token source (benchmarks/transport_server.py, no model), `--streams`
concurrent streams flat out (or paced with `--rate`), each a loop of replies of `--reply-tokens`
tokens: one session per reply (created, streamed, deleted), so that nothing the service is
meant to keep (sessions, their messages) grows with the run and what grows is what it should
not keep. `--keep-sessions` leaves them (the store's bound, max_sessions, then applies);
`--reply-tokens 0` is one never-ending reply per stream (the transport benchmark's shape: its
live log grows with it, as a reply's log must while it can be resumed).

Transports: `sse` (POST .../messages, Accept: text/event-stream), `ws` (the session
WebSocket: one socket per reply) and `openai` (POST /v1/chat/completions, stream: true; no
session).

After `--warmup` events (every stream has finished some replies by then, unless replies are
longer than that), the server's RSS is sampled with the count of token events the clients
received, until `--events` more. Reported: RSS at the start and end of that window, and its
growth per event (end minus start, and the least-squares slope of all samples).

`--snapshots DIR` starts the server with STREAMCHAT_MEMDEBUG=DIR (tracemalloc on, 25 frames)
and has it dump a tracemalloc snapshot and the gc's object count by type at the start and the
end of the window (`DIR/start.*`, `DIR/end.*`); the report then lists the allocation sites and
the types that grew most. tracemalloc slows the server: compare RSS figures without it.
`--server-env MALLOC_ARENA_MAX=2` or `--server-env LD_PRELOAD=...tcmalloc...` tell allocator
fragmentation from memory the service holds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

from benchmarks.output import environment, timestamp, write_results
from benchmarks.transport import _free_port, _wait_ready

SNAPSHOT_SIGNAL = signal.SIGUSR1


@dataclass
class Count:
    events: int = 0  # token events (or OpenAI chunks) received, all streams
    replies: int = 0  # replies read to their end
    errors: list[str] = field(default_factory=list)


def define_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--transport", choices=("sse", "ws", "openai"), default="sse")
    parser.add_argument("--streams", type=int, default=100, help="concurrent streams (100)")
    parser.add_argument("--reply-tokens", type=int, default=500,
                        help="max_tokens of each reply (500); 0: one reply per stream that "
                        "never ends")
    parser.add_argument("--keep-sessions", action="store_true",
                        help="do not delete each reply's session (sse and ws)")
    parser.add_argument("--warmup", type=int, default=150_000,
                        help="events before measuring (150,000: every stream's third reply, "
                        "at about one token an event)")
    parser.add_argument("--events", type=int, default=200_000, help="events measured")
    parser.add_argument("--rate", type=float, default=0.0, help="tokens/s per stream; 0: flat out")
    parser.add_argument("--sample-s", type=float, default=0.5, help="RSS sampling interval")
    parser.add_argument("--timeout", type=float, default=540.0, help="give up after (s)")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    parser.add_argument("--snapshots", type=Path, default=None,
                        help="folder for the server's tracemalloc snapshots and gc counts")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="set in the server's environment only (repeatable), e.g. "
                        "MALLOC_ARENA_MAX=2 or LD_PRELOAD=/lib/x86_64-linux-gnu/"
                        "libtcmalloc_minimal.so.4")
    parser.add_argument("--no-write", action="store_true", help="do not write results JSON")


# -- HTTP/1.1 and WebSocket, just enough of them ---------------------------------------------

async def _head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding") == "chunked":
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return b"".join(parts)
            parts.append(chunk[:-2])
    return b""


def _request(method: str, path: str, body: dict[str, Any] | None = None,
             accept: str = "application/json") -> bytes:
    payload = b"" if body is None else orjson.dumps(body)
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
            ).encode() + payload


async def _call(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str,
                path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
    writer.write(_request(method, path, body))
    status, headers = await _head(reader)
    return status, await _body(reader, headers)


async def _stream_chunked(reader: asyncio.StreamReader, marker: bytes, end: bytes,
                          count: Count) -> None:
    """Read a chunked streaming body to its last chunk, counting `marker` in it, in reads as
    big as come (parsing each chunk would cost this client more than the server spends per
    event). The body ends with its `end` frame, then the empty last chunk."""
    carry, seen_end = b"", False
    keep = max(len(marker), len(end)) - 1
    while True:
        data = await reader.read(1 << 18)
        if not data:
            raise ConnectionError("the server closed the stream")
        # A marker split across two reads is counted once, whole (never one wholly in carry).
        count.events += (carry[-(len(marker) - 1):] + data).count(marker)
        scanned = carry + data
        seen_end = seen_end or end in scanned
        if seen_end and scanned.endswith(b"\r\n0\r\n\r\n"):
            return
        carry = scanned[-keep:]


def _ws_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    length = len(payload)
    head = bytes([0x81]) + (bytes([0x80 | length]) if length < 126
                            else bytes([0x80 | 126]) + length.to_bytes(2, "big"))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class WsFrames:
    """Server frames (never masked) from a reader, parsed out of big reads."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.buffer = b""
        self.at = 0

    async def _more(self) -> None:
        data = await self.reader.read(1 << 18)
        if not data:
            raise ConnectionError("the server closed the socket")
        self.buffer, self.at = self.buffer[self.at:] + data, 0

    async def next(self) -> tuple[int, bytes]:
        while True:
            buffer, at = self.buffer, self.at
            if len(buffer) - at >= 2:
                opcode, length, head = buffer[at] & 0x0F, buffer[at + 1] & 0x7F, 2
                if length == 126 and len(buffer) - at >= 4:
                    length, head = struct.unpack_from("!H", buffer, at + 2)[0], 4
                elif length == 127 and len(buffer) - at >= 10:
                    length, head = struct.unpack_from("!Q", buffer, at + 2)[0], 10
                if length < 126 or head > 2:
                    start = at + head
                    if len(buffer) - start >= length:
                        self.at = start + length
                        return opcode, buffer[start:start + length]
            await self._more()


# -- one stream: replies one after the other -------------------------------------------------

def _message_body(args: argparse.Namespace) -> dict[str, Any]:
    tokens = args.reply_tokens or 1 << 20
    return {"content": "Hi", "params": {"max_tokens": tokens}}


async def _new_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    status, body = await _call(reader, writer, "POST", "/v1/sessions", {})
    if status != 201:
        raise RuntimeError(f"POST /v1/sessions -> {status}: {body[:200]!r}")
    return str(orjson.loads(body)["id"])


async def _delete_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          sid: str) -> None:
    status, body = await _call(reader, writer, "DELETE", f"/v1/sessions/{sid}")
    if status != 204:
        raise RuntimeError(f"DELETE /v1/sessions/{sid} -> {status}: {body[:200]!r}")


async def sse_replies(port: int, args: argparse.Namespace, count: Count) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
    try:
        while True:
            sid = await _new_session(reader, writer)
            writer.write(_request("POST", f"/v1/sessions/{sid}/messages", _message_body(args),
                                  accept="text/event-stream"))
            status, headers = await _head(reader)
            if status != 200:
                raise RuntimeError(f"POST messages -> {status}: {await _body(reader, headers)!r}")
            await _stream_chunked(reader, b"event: token", b"event: done", count)
            count.replies += 1
            if not args.keep_sessions:
                await _delete_session(reader, writer, sid)
    finally:
        writer.close()


async def openai_replies(port: int, args: argparse.Namespace, count: Count) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
    body = {"model": "token-source", "stream": True, "max_tokens": args.reply_tokens or 1 << 20,
            "messages": [{"role": "user", "content": "Hi"}]}
    try:
        while True:
            writer.write(_request("POST", "/v1/chat/completions", body, "text/event-stream"))
            status, headers = await _head(reader)
            if status != 200:
                raise RuntimeError(f"chat/completions -> {status}: "
                                   f"{await _body(reader, headers)!r}")
            await _stream_chunked(reader, b"data: {", b"data: [DONE]", count)
            count.replies += 1
    finally:
        writer.close()


async def ws_replies(port: int, args: argparse.Namespace, count: Count) -> None:
    http_reader, http_writer = await asyncio.open_connection("127.0.0.1", port)
    message = _ws_frame(orjson.dumps({"type": "message", **_message_body(args)}))
    try:
        while True:
            sid = await _new_session(http_reader, http_writer)
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write((f"GET /v1/sessions/{sid}/ws HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                          ).encode())
            status, _ = await _head(reader)
            if status != 101:
                raise RuntimeError(f"WebSocket upgrade -> {status}")
            writer.write(message)
            frames = WsFrames(reader)
            while True:
                opcode, payload = await frames.next()
                if opcode == 8:
                    raise RuntimeError(f"socket closed mid-reply: {payload!r}")
                if payload.startswith(b'{"type":"token"'):
                    count.events += 1
                elif payload.startswith(b'{"type":"done"'):
                    break
                elif payload.startswith(b'{"type":"error"'):
                    raise RuntimeError(f"error frame: {payload[:300]!r}")
            count.replies += 1
            writer.write(b"\x88\x82" + b"\0\0\0\0" + (1000).to_bytes(2, "big"))  # close, masked
            writer.close()
            if not args.keep_sessions:
                await _delete_session(http_reader, http_writer, sid)
    finally:
        http_writer.close()


STREAMERS = {"sse": sse_replies, "ws": ws_replies, "openai": openai_replies}


# -- the run -----------------------------------------------------------------------------------

def _snapshot(proc: subprocess.Popen[bytes], folder: Path, name: str, timeout_s: float = 120) -> None:
    """Have the server dump DIR/name.tracemalloc and DIR/name.gc.json, and wait for them."""
    (folder / "next").write_text(name)
    done = folder / f"{name}.gc.json"
    proc.send_signal(SNAPSHOT_SIGNAL)
    deadline = time.monotonic() + timeout_s
    while not done.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"the server wrote no snapshot {name}")
        time.sleep(0.2)


def _slope(points: list[tuple[int, int]]) -> float:
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else float("nan")


def snapshot_diff(folder: Path, top: int = 15) -> dict[str, Any]:
    import tracemalloc

    start = tracemalloc.Snapshot.load(str(folder / "start.tracemalloc"))
    end = tracemalloc.Snapshot.load(str(folder / "end.tracemalloc"))
    keep = [tracemalloc.Filter(False, tracemalloc.__file__)]
    start, end = start.filter_traces(keep), end.filter_traces(keep)
    sites = []
    for stat in end.compare_to(start, "traceback")[:top]:
        frames = [f"{f.filename.split('site-packages/')[-1].split('memwt/')[-1]}:{f.lineno}"
                  for f in stat.traceback[-6:]]
        sites.append({"size_diff": stat.size_diff, "count_diff": stat.count_diff,
                      "size": stat.size, "traceback": frames})
    lines = []
    for stat in end.compare_to(start, "lineno")[:top]:
        f = stat.traceback[0]
        lines.append({"size_diff": stat.size_diff, "count_diff": stat.count_diff,
                      "where": f"{f.filename.split('site-packages/')[-1]}:{f.lineno}"})
    gc_start = json.loads((folder / "start.gc.json").read_text())
    gc_end = json.loads((folder / "end.gc.json").read_text())
    types = sorted(((k, gc_end["types"].get(k, 0) - gc_start["types"].get(k, 0))
                    for k in set(gc_end["types"]) | set(gc_start["types"])),
                   key=lambda kv: -abs(kv[1]))[:top]
    traced = [gc_start["traced"], gc_end["traced"]]
    return {"traced_bytes": traced, "tasks": [gc_start["tasks"], gc_end["tasks"]],
            "top_sites": sites, "top_lines": lines,
            "gc_types": [{"type": k, "diff": v} for k, v in types if v]}


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    port = _free_port()
    env = dict(os.environ)
    env.update(item.split("=", 1) for item in args.server_env)
    if args.snapshots is not None:
        args.snapshots.mkdir(parents=True, exist_ok=True)
        for old in args.snapshots.glob("*"):
            old.unlink()
        env["STREAMCHAT_MEMDEBUG"] = str(args.snapshots)
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block for long
        [sys.executable, "-m", "benchmarks.transport_server", "--port", str(port),
         "--tokens-per-s", str(args.rate), "--response", "app", "--core", str(args.server_core)],
        env=env)
    count = Count()
    tasks: list[asyncio.Task[None]] = []
    try:
        await _wait_ready(port, proc)
        server = psutil.Process(proc.pid)
        rss_ready = server.memory_info().rss
        streamer = STREAMERS[args.transport]

        async def one() -> None:
            try:
                await streamer(port, args, count)
            except Exception as exc:  # a data point: the run stops on it
                count.errors.append(f"{type(exc).__name__}: {exc}")

        tasks = [asyncio.create_task(one()) for _ in range(args.streams)]
        deadline = time.monotonic() + args.timeout
        loop = asyncio.get_running_loop()

        async def until(events: int) -> None:
            while count.events < events:
                if count.errors:
                    raise RuntimeError(f"{len(count.errors)} stream(s) failed: {count.errors[0]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{count.events:,} events in {args.timeout:.0f} s")
                await asyncio.sleep(0.05)

        await until(args.warmup)
        if args.snapshots is not None:
            await loop.run_in_executor(None, _snapshot, proc, args.snapshots, "start")
        began, events0, replies0 = time.monotonic(), count.events, count.replies
        cpu0, client_cpu0 = sum(server.cpu_times()[:2]), time.process_time()
        samples: list[tuple[float, int, int]] = []
        target = events0 + args.events
        while count.events < target:
            samples.append((time.monotonic() - began, count.events - events0,
                            server.memory_info().rss))
            if count.errors:
                raise RuntimeError(f"{len(count.errors)} stream(s) failed: {count.errors[0]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count.events:,} events in {args.timeout:.0f} s")
            await asyncio.sleep(args.sample_s)
        samples.append((time.monotonic() - began, count.events - events0,
                        server.memory_info().rss))
        elapsed = time.monotonic() - began
        cpu = (sum(server.cpu_times()[:2]) - cpu0) / elapsed
        client_cpu = (time.process_time() - client_cpu0) / elapsed
        replies = count.replies - replies0
        if args.snapshots is not None:
            await loop.run_in_executor(None, _snapshot, proc, args.snapshots, "end")
        rss_after = server.memory_info().rss
        threads = server.num_threads()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (_, _, rss_start), (_, events, rss_end) = samples[0], samples[-1]
    return {
        "rss_ready_mib": rss_ready / 2**20, "rss_start_mib": rss_start / 2**20,
        "rss_end_mib": rss_end / 2**20, "rss_after_snapshot_mib": rss_after / 2**20,
        "events": events, "replies": replies, "seconds": elapsed, "events_per_s": events / elapsed,
        "server_cpu_of_one_core": cpu, "client_cpu_of_one_core": client_cpu,
        "tokens_per_event": replies * args.reply_tokens / events if args.reply_tokens and events
        else None,
        "server_threads": threads,  # glibc gives each thread that allocates its own arena
        "load_average": os.getloadavg(),  # other work on the machine slows the run, not the bytes
        "bytes_per_event": (rss_end - rss_start) / events if events else float("nan"),
        "slope_bytes_per_event": _slope([(e, r) for _, e, r in samples]),
        "curve": [{"t": round(t, 2), "events": e, "rss_mib": round(r / 2**20, 2)}
                  for t, e, r in samples],
    }


def report(out: dict[str, Any]) -> str:
    c, r = out["config"], out["results"]
    lines = [f"{c['transport']} x{c['streams']}, replies of {c['reply_tokens'] or 'unbounded'} "
             f"tokens{' (sessions kept)' if c['keep_sessions'] else ''}, "
             f"{'paced ' + str(c['rate']) + ' tok/s' if c['rate'] else 'flat out'}; "
             f"{out['environment']['cpu']}; {c['malloc'] or 'glibc malloc'}",
             f"  RSS ready {r['rss_ready_mib']:.1f} MiB; after {c['warmup']:,} warm-up events "
             f"{r['rss_start_mib']:.1f} MiB; after {r['events']:,} more events "
             f"({r['replies']:,} replies, {r['events_per_s']:,.0f} events/s, server CPU "
             f"{r['server_cpu_of_one_core']:.0%}, client {r['client_cpu_of_one_core']:.0%}) "
             f"{r['rss_end_mib']:.1f} MiB",
             f"  growth: {r['bytes_per_event']:.1f} bytes/event (end - start), slope "
             f"{r['slope_bytes_per_event']:.1f} bytes/event; target < 64: "
             f"{'met' if r['slope_bytes_per_event'] < 64 and r['bytes_per_event'] < 64 else 'MISSED'}"]
    if "snapshots" in r:
        s = r["snapshots"]
        lines.append(f"  traced (tracemalloc) {s['traced_bytes'][0] / 2**20:.1f} -> "
                     f"{s['traced_bytes'][1] / 2**20:.1f} MiB; asyncio tasks {s['tasks']}")
        lines.append("  top growth by line:")
        lines += [f"    {x['size_diff']:+,} B {x['count_diff']:+,} blocks  {x['where']}"
                  for x in s["top_lines"][:10]]
        lines.append("  top growth by traceback:")
        for x in s["top_sites"][:6]:
            lines.append(f"    {x['size_diff']:+,} B {x['count_diff']:+,} blocks")
            lines += [f"        {frame}" for frame in x["traceback"]]
        lines.append("  gc objects by type: " + ", ".join(
            f"{x['type']} {x['diff']:+,}" for x in s["gc_types"][:12]))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    import uvloop

    parser = argparse.ArgumentParser(prog="python -m benchmarks stream-memory",
                                     description=__doc__.split("\n", 1)[1].strip(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    define_options(parser)
    args = parser.parse_args(argv)

    if args.client_core is not None:
        os.sched_setaffinity(0, {args.client_core})
    stamp = timestamp()
    results = uvloop.run(measure(args))
    if args.snapshots is not None:
        results["snapshots"] = snapshot_diff(args.snapshots)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config["malloc"] = " ".join(item for item in args.server_env
                                if item.startswith(("MALLOC_", "LD_PRELOAD")))
    out = {"timestamp": stamp, "environment": environment(), "config": config,
           "results": results}
    print(report(out))
    if not args.no_write:
        print(f"\nresults: {write_results(stamp, out, 'stream-memory')}")
    return 0
