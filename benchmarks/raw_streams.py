"""Thousands of SSE or WebSocket streams from one process, light enough not to be the bottleneck.

A full client (httpx, websockets) parses every event and costs more per event than the server
under test; these protocols only scan each read for the token source's stamps (`~<hex>;`) and
count event markers, so one client core keeps up with one server core. Reads are cut after
their last `;`: a stamp or marker split across two reads is scanned once, whole.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time
from array import array
from dataclasses import dataclass, field

import orjson

STAMP = re.compile(rb"~([0-9a-f]+);")
SSE_TOKEN = b"event: token"  # sse-starlette ends lines with \\r\\n, the app with \\n
WS_TOKEN = b'{"type":"token"'
OPENAI_CHUNK = b'"chat.completion.chunk"'
RESPONSES_DELTA = b"event: response.output_text.delta"
MODEL = "token-source"  # benchmarks/token_source.py's model name


@dataclass
class Tally:
    """Tokens, events and per-token latency, counted only inside the measuring window."""

    measuring: bool = False
    tokens: int = 0
    events: int = 0
    latencies_us: array = field(default_factory=lambda: array("q"))  # type: ignore[type-arg]
    first_token: int = 0  # streams that have received a token (ramp-up), counted always
    errors: list[str] = field(default_factory=list)  # refused streams: the response's start

    def start(self) -> None:
        self.tokens = self.events = 0
        self.latencies_us = array("q")
        self.measuring = True


class _Stream(asyncio.Protocol):
    """One stream: send the request, then scan what comes back."""

    marker = SSE_TOKEN
    accepted = b"HTTP/1.1 200"

    def __init__(self, request: bytes, tally: Tally) -> None:
        self.request = request
        self.tally = tally
        self.buffer = b""
        self.started = False
        self.answered = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        now_us = int(time.monotonic() * 1e6)
        if not self.answered:
            self.answered = True
            if not data.startswith(self.accepted):
                self.tally.errors.append(data[:300].decode(errors="replace"))
        buffer = self.buffer + data
        cut = buffer.rfind(b";") + 1
        if not cut:
            self.buffer = buffer
            return
        region, self.buffer = buffer[:cut], buffer[cut:]
        self.scan(region, now_us)

    def scan(self, region: bytes, now_us: int) -> None:
        tally = self.tally
        stamps = STAMP.findall(region)
        if stamps and not self.started:
            self.started = True
            tally.first_token += 1
        if not tally.measuring:
            return
        tally.tokens += len(stamps)
        tally.events += region.count(self.marker)
        append = tally.latencies_us.append
        for stamp in stamps:
            append(now_us - int(stamp, 16))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class SseStream(_Stream):
    marker = SSE_TOKEN


class OpenAIStream(_Stream):
    marker = OPENAI_CHUNK


class ResponsesStream(_Stream):
    marker = RESPONSES_DELTA


class WsStream(_Stream):
    """A WebSocket: the upgrade, then one masked `message` frame once the 101 has come."""

    marker = WS_TOKEN

    def __init__(self, request: bytes, frame: bytes, tally: Tally) -> None:
        super().__init__(request, tally)
        self.frame = frame
        self.upgraded = False

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            self.buffer += data
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buffer.startswith(b"HTTP/1.1 101"):
                self.tally.errors.append(self.buffer[:300].decode(errors="replace"))
                self.close()
                return
            self.upgraded = self.answered = True
            data, self.buffer = self.buffer[end + 4:], b""
            self.transport.write(self.frame)  # type: ignore[union-attr]
        super().data_received(data)


def _post(path: str, body: dict[str, object], accept: str = "text/event-stream") -> bytes:
    payload = orjson.dumps(body)
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
            ).encode() + payload


def masked_text_frame(payload: bytes) -> bytes:
    """A client's text frame (clients must mask, RFC 6455 5.3)."""
    mask = os.urandom(4)
    length = len(payload)
    head = bytes([0x81])
    if length < 126:
        head += bytes([0x80 | length])
    else:
        head += bytes([0x80 | 126]) + length.to_bytes(2, "big")
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


def session_sse(sid: str, max_tokens: int, tally: Tally) -> SseStream:
    return SseStream(_post(f"/v1/sessions/{sid}/messages",
                           {"content": "Hi", "params": {"max_tokens": max_tokens}}), tally)


def session_ws(sid: str, max_tokens: int, tally: Tally) -> WsStream:
    key = base64.b64encode(os.urandom(16)).decode()
    # No permessage-deflate offered: compression would cost both sides more than it saves here.
    upgrade = (f"GET /v1/sessions/{sid}/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n\r\n").encode()
    frame = masked_text_frame(orjson.dumps(
        {"type": "message", "content": "Hi", "params": {"max_tokens": max_tokens}}))
    return WsStream(upgrade, frame, tally)


def openai_sse(max_tokens: int, tally: Tally) -> OpenAIStream:
    """A streamed `/v1/chat/completions`: one chunk per token event."""
    return OpenAIStream(_post("/v1/chat/completions", {
        "model": MODEL, "stream": True, "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Hi"}]}), tally)


def responses_sse(max_tokens: int, tally: Tally) -> ResponsesStream:
    """A background `/v1/responses` followed over SSE from its start (its reply log)."""
    return ResponsesStream(_post("/v1/responses", {
        "model": MODEL, "input": "Hi", "background": True, "stream": True,
        "max_output_tokens": max_tokens}), tally)


def floor_sse(max_tokens: int, tally: Tally) -> SseStream:
    return SseStream(_post("/stream", {"max_tokens": max_tokens}), tally)


async def open_streams(port: int, streams: list[_Stream], parallel: int = 64) -> None:
    """Connect every stream, `parallel` connections being opened at a time."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(parallel)

    async def connect(stream: _Stream) -> None:
        async with gate:
            await loop.create_connection(lambda: stream, "127.0.0.1", port)

    await asyncio.gather(*(connect(stream) for stream in streams))
