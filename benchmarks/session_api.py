"""Client pieces of the sessions API (API.md) shared by the SSE, WebSocket and multi-turn runs."""

from __future__ import annotations

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
