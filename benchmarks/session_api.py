"""Client pieces of the sessions API (API.md) shared by the SSE, WebSocket and multi-turn runs."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from benchmarks.workload import RequestResult, TokenClock


def reply_params(max_tokens: int) -> dict[str, Any]:
    """Message params of every measured reply: greedy and exactly max_tokens long."""
    return {"max_tokens": max_tokens, "temperature": 0, "ignore_eos": True}


async def create_session(client: httpx.AsyncClient, **body: Any) -> str:
    created = await client.post("/v1/sessions", json=body)
    if created.status_code != 201:
        raise RuntimeError(f"POST /v1/sessions -> {created.status_code}: {created.text[:200]}")
    return str(created.json()["id"])


def apply_event(kind: str, data: dict[str, Any], now: float, result: RequestResult,
                clock: TokenClock) -> str:
    """Record one reply event (an SSE event or a WS frame: same fields); return its token text."""
    if kind == "token":
        clock.tokens(now, int(data.get("n", 1)))
        return str(data.get("text", ""))
    if kind == "done":
        usage = data.get("usage") or {}
        # The engine's own count (EOS included), not the sum of n: the same count the bare side uses.
        result.completion_tokens = int(usage.get("completion_tokens", 0))
        result.prompt_tokens = usage.get("prompt_tokens")
        result.cached_tokens = usage.get("cached_tokens")
        result.finish_reason = data.get("finish_reason")
        result.server_timings = data.get("timings")
    elif kind == "error":
        result.error = f"error event: {str(data)[:200]}"
    return ""


async def measured_chat(client: httpx.AsyncClient, tag: str,
                        converse: Callable[[str, RequestResult], Awaitable[None]]) -> RequestResult:
    """One simulated chat: create a session, then `converse(session_id, result)` over a transport.
    A failure is recorded in the result: one failed chat is a data point, not the end of the run."""
    start = time.perf_counter()
    result = RequestResult(tag=tag, start_s=start, sent_s=start)
    try:
        await converse(await create_session(client), result)
    except Exception as exc:
        result.error = result.error or f"{type(exc).__name__}: {exc}"
    result.end_s = time.perf_counter()
    return result
