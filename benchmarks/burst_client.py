"""The load benchmark's burst client: a process of its own that does nothing but the burst.

`python -m benchmarks load` (benchmarks/load.py) spawns it through `run_burst`. It opens one
raw TCP connection per request and pre-warms each with a keep-alive `GET /health` read to its
end, so that no handshake is timed; then it writes every `POST /v1/chat/completions` (bodies
on stdin, a JSON list) back to back and times each from its own write: to its status line and
to its end. 200s are read to `data: [DONE]` (or the last chunk, or the close); 429s and 503s
are refusals, with their Retry-After; what has no end `--hang-s` after the sends is hung.

Why a process of its own: run from the process that also read the accepted streams with
httpx, on 2 cores, a refusal waited seconds for the client to get round to it, so the refusal
times were the client's as much as the server's. Here each read only appends bytes and looks
for the end; counting chunks and usage waits for the end of the burst. Stdlib only (plus
benchmarks.raw_streams' request builder), so that it starts fast. Prints one JSON document:
`{"records": [...], "summary": {...}}`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.raw_streams import _post
from benchmarks.stats import percentile

HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
REFUSALS = (429, 503)
DONE = b"data: [DONE]"
CHUNK = b'"chat.completion.chunk"'
USAGE_TOKENS = re.compile(rb'"completion_tokens"\s*:\s*(\d+)')
WARM_PARALLEL = 64  # connections opened and warmed at a time
CONNECT_S = 30.0


@dataclass
class Record:
    """One request, times in ms from its own send."""

    status: str = "failed"  # ok | rejected | failed | hung
    http: int | None = None
    status_ms: float | None = None  # to the first bytes of the status line
    end_ms: float | None = None
    retry_after: str | None = None
    chunks: int = 0  # "chat.completion.chunk" objects
    tokens: int | None = None  # usage's completion_tokens, where the stream said
    done: bool = False  # a 200 that ended with data: [DONE]
    error: str | None = None


@dataclass
class _Reply:
    sent: float
    status_at: float | None = None
    http: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False
    left: int | None = None  # Content-Length bytes still to come; None: to the close
    body: bytearray = field(default_factory=bytearray)
    done: bool = False
    end_at: float | None = None
    closed_early: bool = False


class Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time (`ask`)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.reply: _Reply | None = None
        self.ended: asyncio.Future[None] = self.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def ask(self, request: bytes) -> asyncio.Future[None]:
        self.buf.clear()
        self.ended = self.loop.create_future()
        self.reply = _Reply(sent=time.monotonic())
        if self.transport is None or self.transport.is_closing():
            self._finish(self.reply.sent, closed=True)
        else:
            self.transport.write(request)
        return self.ended

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        r = self.reply
        if r is None or r.end_at is not None:
            return  # after the end we read (the last chunk after [DONE]): nothing to time
        if r.status_at is None:
            r.status_at = now
        self.buf += data
        if r.http is None and not self._head():
            return
        if r.chunked:
            self._dechunk(now)
        elif r.left is None:
            r.body += self.buf
            self.buf.clear()
        else:
            take = min(r.left, len(self.buf))
            r.body += self.buf[:take]
            del self.buf[:take]
            r.left -= take
            if r.left == 0:
                self._finish(now)

    def _head(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        del self.buf[:end + 4]
        r = self.reply
        assert r is not None
        r.http = int(lines[0].split()[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            r.headers[name.strip().lower()] = value.strip()
        r.chunked = "chunked" in r.headers.get("transfer-encoding", "").lower()
        if not r.chunked and "content-length" in r.headers:
            r.left = int(r.headers["content-length"])
        return True

    def _dechunk(self, now: float) -> None:
        """Whole chunks only (each is one SSE event, small): a partial one waits for more."""
        r = self.reply
        assert r is not None
        while r.end_at is None:
            line = self.buf.find(b"\r\n")
            if line < 0:
                return
            size = int(bytes(self.buf[:line]).split(b";")[0], 16)
            if size == 0:
                self._finish(now)  # the last chunk (no trailers on these streams)
                return
            if len(self.buf) < line + 2 + size + 2:
                return
            chunk = bytes(self.buf[line + 2:line + 2 + size])
            del self.buf[:line + 2 + size + 2]
            r.body += chunk
            if DONE in r.body[-(len(chunk) + len(DONE)):]:
                self._finish(now)

    def _finish(self, now: float, closed: bool = False) -> None:
        r = self.reply
        if r is None or r.end_at is not None:
            return
        r.end_at, r.closed_early = now, closed
        r.done = DONE in r.body
        if not self.ended.done():
            self.ended.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        r = self.reply
        # Read to the close: a body without a length ends there; anything else ended early.
        self._finish(time.monotonic(), closed=r is None or r.http is None or r.chunked
                     or r.left not in (None, 0))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def record(self) -> Record:
        r = self.reply
        if r is None:
            return Record(error="never sent")

        def ms(t: float | None) -> float | None:
            return None if t is None else 1000 * (t - r.sent)

        rec = Record(http=r.http, status_ms=ms(r.status_at), end_ms=ms(r.end_at),
                     retry_after=r.headers.get("retry-after"), done=r.done,
                     chunks=r.body.count(CHUNK))
        tokens = USAGE_TOKENS.findall(r.body)
        rec.tokens = int(tokens[-1]) if tokens else None
        if r.end_at is None:
            rec.status = "hung"
            rec.error = "no status line" if r.http is None else "no end"
        elif r.http in REFUSALS:
            rec.status = "rejected"
        elif r.http == 200 and r.done:
            rec.status = "ok"
        elif r.http is None:
            rec.error = "closed before a status line"
        else:
            rec.error = ("the stream ended without [DONE]" if r.http == 200
                         else bytes(r.body[:200]).decode(errors="replace"))
        return rec


async def burst(host: str, port: int, bodies: list[dict[str, Any]],
                hang_s: float) -> list[Record]:
    """Open and warm a connection per body, then send them all at once; one record each."""
    loop = asyncio.get_running_loop()
    requests = [_post("/v1/chat/completions", body) for body in bodies]
    conns = [Conn() for _ in bodies]
    gate = asyncio.Semaphore(WARM_PARALLEL)

    async def warm(conn: Conn) -> None:
        async with gate:
            await loop.create_connection(lambda: conn, host, port)
            await conn.ask(HEALTH)
            assert conn.reply is not None
            if conn.reply.http != 200 or conn.reply.closed_early:
                raise RuntimeError(f"GET /health on a fresh connection: {conn.reply.http}")

    try:
        async with asyncio.timeout(CONNECT_S):
            await asyncio.gather(*(warm(conn) for conn in conns))
        # Nothing between the sends but the writes: each is timed from its own.
        ends = [conn.ask(request) for conn, request in zip(conns, requests, strict=True)]
        await asyncio.wait(ends, timeout=hang_s)
        return [conn.record() for conn in conns]
    finally:
        for conn in conns:
            conn.close()


def summarise(records: list[Record], expect_tokens: int | None = None) -> dict[str, Any]:
    """load.py's burst keys: counts, and refusal times from the send (p50, p99)."""
    refused = [r.status_ms for r in records if r.status == "rejected" and r.status_ms is not None]
    accepted = [r.status_ms for r in records
                if r.http == 200 and r.status_ms is not None]
    ok = [r for r in records if r.status == "ok"]
    return {"requests": len(records), "accepted": len(ok), "rejected": len(refused),
            "rejected_p50_ms": percentile(refused, 50),
            "rejected_p99_ms": percentile(refused, 99),
            "accepted_first_status_p99_ms": percentile(accepted, 99),
            "hung": sum(r.status == "hung" for r in records),
            "failed": sum(r.status == "failed" for r in records),
            "incomplete": 0 if expect_tokens is None else sum(
                r.tokens != expect_tokens for r in ok),
            "retry_after": sorted({r.retry_after for r in records if r.retry_after}),
            "errors": sorted({r.error for r in records if r.error})[:5]}


async def run_burst(port: int, bodies: list[dict[str, Any]], *, hang_s: float,
                    expect_tokens: int | None = None, host: str = "127.0.0.1") -> dict[str, Any]:
    """Run the burst in a child process; its summary, with its records under "records"."""
    cmd = [sys.executable, "-m", "benchmarks.burst_client", "--host", host, "--port", str(port),
           "--hang-s", str(hang_s)]
    if expect_tokens is not None:
        cmd += ["--expect-tokens", str(expect_tokens)]
    proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(CONNECT_S + hang_s + 60):
            out, err = await proc.communicate(json.dumps(bodies).encode())
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"the burst client exited {proc.returncode}: "
                           f"{err.decode(errors='replace')[-2000:]}")
    result = json.loads(out)
    return {**result["summary"], "records": result["records"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.burst_client",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hang-s", type=float, default=600.0)
    parser.add_argument("--expect-tokens", type=int, default=None,
                        help="a whole reply's completion tokens (else incomplete is not counted)")
    args = parser.parse_args(argv)
    bodies = json.load(sys.stdin)
    records = asyncio.run(burst(args.host, args.port, bodies, args.hang_s))
    json.dump({"records": [asdict(r) for r in records],
               "summary": summarise(records, args.expect_tokens)}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
