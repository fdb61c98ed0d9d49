"""The load benchmark's burst client (benchmarks/burst_client.py), run as load.py runs it: a
child process, here against a fake HTTP/1.1 server in this test's loop that refuses some
requests at once (429 with Retry-After), streams some whole (chunked SSE to `data: [DONE]`,
written a few bytes at a time), cuts some short and never answers the rest. No engine."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from benchmarks.burst_client import run_burst

KINDS = ("refuse", "whole", "cut", "hang")  # request i gets KINDS[i % 4]
PER_KIND = 3
HANG_S = 2.0
TOKENS = 3


@dataclass
class FakeServer:
    port: int = 0
    seen: list[tuple[int, str]] = field(default_factory=list)  # (connection, path), in order


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _event(payload: dict[str, object]) -> bytes:
    return _chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")


def _stream(tokens: int) -> bytes:
    head = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n")
    chunks = [_event({"object": "chat.completion.chunk",
                      "choices": [{"index": 0, "delta": {"content": f"t{n}"}}]})
              for n in range(tokens)]
    usage = _event({"object": "chat.completion.chunk", "choices": [],
                    "usage": {"prompt_tokens": 5, "completion_tokens": tokens}})
    return head + b"".join(chunks) + usage + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"


def _plain(status: str, body: bytes, extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    fake = FakeServer()
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        conn, connections = connections, connections + 1
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                lines = head.split("\r\n")
                path = lines[0].split(" ")[1]
                length = next((int(line.split(":")[1]) for line in lines
                               if line.lower().startswith("content-length:")), 0)
                body = await reader.readexactly(length)
                fake.seen.append((conn, path))
                if path == "/health":
                    writer.write(_plain("200 OK", b'{"status":"ok"}'))
                    continue
                kind = KINDS[int(json.loads(body)["user"].split("-")[1]) % len(KINDS)]
                if kind == "refuse":
                    writer.write(_plain("429 Too Many Requests", b'{"error":{}}', "retry-after: 3\r\n"))
                elif kind == "whole":
                    reply = _stream(TOKENS)
                    for at in range(0, len(reply), 7):  # split reads: the client reassembles
                        writer.write(reply[at:at + 7])
                        await writer.drain()
                elif kind == "cut":
                    writer.write(_stream(TOKENS)[:200])
                    return
                else:
                    await reader.read()  # never answers; ends when the client gives up
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    fake.port = srv.sockets[0].getsockname()[1]
    try:
        yield fake
    finally:
        srv.close()
        await srv.wait_closed()


def _bodies(indices: range | list[int]) -> list[dict[str, object]]:
    return [{"model": "m", "messages": [{"role": "user", "content": f"hi {i}"}],
             "stream": True, "max_tokens": TOKENS, "user": f"burst-{i}"} for i in indices]


async def test_the_burst_counts_refusals_whole_streams_cut_ones_and_hangs(
        server: FakeServer) -> None:
    n = PER_KIND * len(KINDS)
    async with asyncio.timeout(HANG_S + 30):
        result = await run_burst(server.port, _bodies(range(n)), hang_s=HANG_S,
                                 expect_tokens=TOKENS)
    assert (result["requests"], result["rejected"], result["accepted"], result["failed"],
            result["hung"], result["incomplete"]) == (n, PER_KIND, PER_KIND, PER_KIND, PER_KIND, 0)
    assert result["retry_after"] == ["3"]
    for key in ("rejected_p50_ms", "rejected_p99_ms", "accepted_first_status_p99_ms"):
        assert 0 < result[key] < 1000 * HANG_S and math.isfinite(result[key]), key
    by_kind = {kind: [r for i, r in enumerate(result["records"]) if KINDS[i % 4] == kind]
               for kind in KINDS}
    assert all(r["status"] == "ok" and r["done"] and r["chunks"] == TOKENS + 1
               and r["tokens"] == TOKENS for r in by_kind["whole"])
    assert all(r["status"] == "failed" and r["http"] == 200 and not r["done"]
               for r in by_kind["cut"])
    assert all(r["status"] == "hung" and r["status_ms"] is None for r in by_kind["hang"])


async def test_every_connection_is_opened_and_warmed_before_the_first_send(
        server: FakeServer) -> None:
    indices = [i for i in range(16) if KINDS[i % 4] in ("refuse", "whole")]  # none to wait for
    n = len(indices)
    async with asyncio.timeout(30):
        result = await run_burst(server.port, _bodies(indices), hang_s=HANG_S)
    assert (result["rejected"], result["accepted"]) == (n // 2, n // 2)
    paths = [path for _, path in server.seen]
    assert paths == ["/health"] * n + ["/v1/chat/completions"] * n
    per_conn: dict[int, list[str]] = {}
    for conn, path in server.seen:
        per_conn.setdefault(conn, []).append(path)
    assert len(per_conn) == n  # one connection per request, kept alive from its /health
    assert all(p == ["/health", "/v1/chat/completions"] for p in per_conn.values())


async def test_a_server_that_is_not_there_fails_loudly() -> None:
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    with pytest.raises(RuntimeError, match="burst client exited"):
        async with asyncio.timeout(30):
            await run_burst(port, _bodies(range(2)), hang_s=HANG_S)
