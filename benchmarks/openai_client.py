"""A streaming OpenAI chat client that times each request, for the load phases that vLLM's
benchmark client cannot run: a user holding many streams beside a user sending one request at
a time (fairness), and open-loop arrivals beyond what the server sustains (overload).

Each request records when it was sent, its first content chunk, its end, and how it ended:
`ok`, `rejected` (429 or 503: the server said no, at once), `failed` (anything else), or
`hung` (no end within the timeout). Chunks are read as they arrive, with the service's own SSE
parser, so TTFT is the time to the first chunk with text.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from app.api.sse import EventParser

REJECTED_STATUSES = (429, 503)


@dataclass
class Outcome:
    user: str
    sent_s: float
    status: str = "failed"  # ok | rejected | failed | hung
    http_status: int | None = None
    first_s: float | None = None  # perf_counter of the first content chunk
    end_s: float | None = None
    tokens: int = 0  # completion tokens (usage)
    error: str | None = None

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_s is None else self.first_s - self.sent_s

    @property
    def latency_s(self) -> float | None:
        return None if self.end_s is None else self.end_s - self.sent_s


def make_client(base_url: str, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(None, connect=30.0),
                             limits=httpx.Limits(max_connections=connections + 8,
                                                 max_keepalive_connections=connections + 8))


async def chat(client: httpx.AsyncClient, model: str, text: str, user: str, *,
               max_tokens: int, timeout_s: float) -> Outcome:
    """One streamed chat completion with fixed-length output (ignore_eos, temperature 0)."""
    outcome = Outcome(user=user, sent_s=time.perf_counter())
    body: dict[str, Any] = {
        "model": model, "messages": [{"role": "user", "content": text}], "stream": True,
        "stream_options": {"include_usage": True}, "max_tokens": max_tokens,
        "temperature": 0.0, "ignore_eos": True, "user": user}
    try:
        async with asyncio.timeout(timeout_s):
            await _stream(client, body, outcome)
    except TimeoutError:
        outcome.status, outcome.error = "hung", f"no end within {timeout_s:.0f} s"
    except httpx.HTTPError as exc:
        outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
    if outcome.end_s is None:
        outcome.end_s = time.perf_counter()
    return outcome


async def _stream(client: httpx.AsyncClient, body: dict[str, Any], outcome: Outcome) -> None:
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        outcome.http_status = response.status_code
        if response.status_code != 200:
            await response.aread()
            outcome.end_s = time.perf_counter()
            outcome.status = "rejected" if response.status_code in REJECTED_STATUSES else "failed"
            outcome.error = response.text[:200]
            return
        parser = EventParser()
        async for raw in response.aiter_raw():
            now = time.perf_counter()
            for event in parser.feed(raw):
                if event.data == "[DONE]":
                    outcome.end_s, outcome.status = now, "ok"
                    return
                chunk = orjson.loads(event.data)
                if "error" in chunk:
                    outcome.error = str(chunk["error"].get("message"))
                    continue
                choices = chunk.get("choices") or []
                if outcome.first_s is None and any(
                        (c.get("delta") or {}).get("content") for c in choices):
                    outcome.first_s = now
                if chunk.get("usage"):
                    outcome.tokens = int(chunk["usage"].get("completion_tokens", 0))
    outcome.error = outcome.error or "the stream ended without [DONE]"
