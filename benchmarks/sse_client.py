"""Side 2: streamchat's session endpoint over HTTP, the reply read as SSE.

Frames are parsed incrementally with the service's own parser (app/api/http/sse.py), so that each
event is timestamped when the bytes that complete it arrive (a library that buffers whole
responses or lines would blur TTFT and ITL).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import httpx

from app.api.http.sse import EventParser
from benchmarks.session_api import apply_event, measured_chat, reply_params
from benchmarks.workload import PromptBuilder, RequestResult, TokenClock, run_levels


def make_client(base_url: str, concurrency: int) -> httpx.AsyncClient:
    # HTTP/1.1 (one connection per stream, like a browser's EventSource), a pool big enough
    # that no chat waits for a connection, and timeouts far above any expected TTFT.
    return httpx.AsyncClient(
        base_url=base_url,
        http2=False,
        timeout=httpx.Timeout(600.0, connect=30.0),
        limits=httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8),
    )


def level_client(base_url: str, levels: Sequence[tuple[int, list[str]]],
                 warmup: int) -> httpx.AsyncClient:
    """One client for a side's every level: a connection for each user of the biggest."""
    return make_client(base_url, max(max((c for c, _ in levels), default=1), warmup))


async def stream_reply(client: httpx.AsyncClient, sid: str, body: dict[str, Any],
                       result: RequestResult) -> str:
    """POST one message with Accept: text/event-stream and read the reply to its end.

    Fills `result` (TTFT counts from here: `sent_s` is set just before the POST) and returns
    the reply's text, which a multi-turn client needs for its own copy of the history.
    """
    clock = TokenClock(result)
    parts: list[str] = []
    result.sent_s = time.perf_counter()
    async with client.stream("POST", f"/v1/sessions/{sid}/messages", json=body,
                             headers={"Accept": "text/event-stream"}) as resp:
        if resp.status_code != 200:
            await resp.aread()
            raise RuntimeError(f"POST messages -> {resp.status_code}: {resp.text[:200]}")
        parser = EventParser()
        async for chunk in resp.aiter_raw():
            now = time.perf_counter()
            for event in parser.feed(chunk):
                parts.append(apply_event(event.event, json.loads(event.data), now, result, clock))
    if result.finish_reason is None and result.error is None:
        result.error = "stream ended without a done event"
    return "".join(parts)


async def one_chat(client: httpx.AsyncClient, tag: str, content: str, max_tokens: int) -> RequestResult:
    """One simulated chat: create a session, send one message, read the reply stream to the end."""
    body = {"content": content, "params": reply_params(max_tokens)}

    async def converse(sid: str, result: RequestResult) -> None:
        await stream_reply(client, sid, body, result)

    return await measured_chat(client, tag, converse)


async def run_sse(
    *,
    base_url: str,
    prompts: PromptBuilder,
    levels: Sequence[tuple[int, list[str]]],
    warmup: int,
    max_tokens: int,
) -> dict[int, list[RequestResult]]:
    """Run every (concurrency, tags) level against a running server."""
    async with level_client(base_url, levels, warmup) as client:

        async def one(tag: str) -> RequestResult:
            return await one_chat(client, tag, prompts.text(tag), max_tokens)

        return await run_levels("sse", one, levels, warmup)
