"""A streaming OpenAI chat client that times each request, for two runs:

- the comparison run's OpenAI sides (`run_openai`): streamchat's `/v1/chat/completions` and
  vLLM's own OpenAI server, measured like the session sides (`RequestResult`, TTFT and ITL
  with the same clock, closed loop);
- the load phases that vLLM's benchmark client cannot run (`chat`, `Outcome`): a user holding
  many streams beside a user sending one request at a time (fairness), and open-loop arrivals
  beyond what the server sustains (overload). Each request records when it was sent, its first
  content chunk, its end, and how it ended: `ok`, `rejected` (429 or 503: the server said no,
  at once), `failed` (anything else), or `hung` (no end within the timeout).

Chunks are read as they arrive, with the service's own SSE parser, so TTFT is the time to the
first chunk with text. A chunk does not say how many tokens it holds: the OpenAI sides count
one per content chunk for ITL (as vLLM's benchmark client does) and take the total from usage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from app.api.http.sse import EventParser
from benchmarks.sse_client import level_client
from benchmarks.workload import PromptBuilder, RequestResult, TokenClock, run_levels

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
    body = chat_body(model, text, max_tokens=max_tokens, user=user)
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


def chat_body(model: str, text: str, *, max_tokens: int, user: str | None = None) -> dict[str, Any]:
    """A streamed chat request of one user turn, greedy and exactly max_tokens long (vLLM's
    `ignore_eos`, which streamchat accepts too), with usage in the last chunk."""
    body: dict[str, Any] = {
        "model": model, "messages": [{"role": "user", "content": text}], "stream": True,
        "stream_options": {"include_usage": True}, "max_tokens": max_tokens,
        "temperature": 0.0, "ignore_eos": True}
    if user is not None:
        body["user"] = user
    return body


async def read_chunks(response: httpx.Response) -> AsyncIterator[tuple[float, dict[str, Any] | None]]:
    """Each chunk's JSON with the perf_counter its bytes completed at; None for `[DONE]`,
    after which nothing more is read."""
    parser = EventParser()
    async for raw in response.aiter_raw():
        now = time.perf_counter()
        for event in parser.feed(raw):
            if event.data == "[DONE]":
                yield now, None
                return
            yield now, orjson.loads(event.data)


async def _stream(client: httpx.AsyncClient, body: dict[str, Any], outcome: Outcome) -> None:
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        outcome.http_status = response.status_code
        if response.status_code != 200:
            await response.aread()
            outcome.end_s = time.perf_counter()
            outcome.status = "rejected" if response.status_code in REJECTED_STATUSES else "failed"
            outcome.error = response.text[:200]
            return
        async for now, chunk in read_chunks(response):
            if chunk is None:
                outcome.end_s, outcome.status = now, "ok"
                return
            if "error" in chunk:
                outcome.error = str(chunk["error"].get("message"))
                continue
            if outcome.first_s is None and _has_content(chunk):
                outcome.first_s = now
            if chunk.get("usage"):
                outcome.tokens = int(chunk["usage"].get("completion_tokens", 0))
    outcome.error = outcome.error or "the stream ended without [DONE]"


def _has_content(chunk: dict[str, Any]) -> bool:
    return any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or [])


# -- the comparison run's OpenAI sides ------------------------------------------------------

def apply_chunk(chunk: dict[str, Any], now: float, result: RequestResult, clock: TokenClock) -> None:
    """Record one chunk: content (one token for ITL), the finish reason, usage, an error."""
    if "error" in chunk:
        result.error = f"error chunk: {str(chunk['error'])[:200]}"
        return
    if _has_content(chunk):
        clock.tokens(now, 1)
    for choice in chunk.get("choices") or []:
        result.finish_reason = choice.get("finish_reason") or result.finish_reason
    usage = chunk.get("usage")
    if usage:
        result.completion_tokens = int(usage.get("completion_tokens", 0))
        result.prompt_tokens = usage.get("prompt_tokens")
        # vLLM's server reports it only with --enable-prompt-tokens-details.
        result.cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")


async def timed_chat(client: httpx.AsyncClient, model: str, tag: str, text: str,
                     max_tokens: int) -> RequestResult:
    """One chat completion read to `[DONE]`; a failure is a data point in the result."""
    start = time.perf_counter()
    result = RequestResult(tag=tag, start_s=start, sent_s=start)
    clock, done = TokenClock(result), False
    try:
        async with client.stream("POST", "/v1/chat/completions",
                                 json=chat_body(model, text, max_tokens=max_tokens)) as response:
            if response.status_code != 200:
                await response.aread()
                raise RuntimeError(f"POST /v1/chat/completions -> {response.status_code}: "
                                   f"{response.text[:200]}")
            async for now, chunk in read_chunks(response):
                if chunk is None:
                    done = True
                else:
                    apply_chunk(chunk, now, result, clock)
    except Exception as exc:
        result.error = result.error or f"{type(exc).__name__}: {exc}"
    if not done and result.error is None:
        result.error = "the stream ended without [DONE]"
    result.end_s = time.perf_counter()
    return result


async def served_model(client: httpx.AsyncClient) -> str:
    """The first model `GET /v1/models` lists: the name either server answers to."""
    listed = await client.get("/v1/models")
    listed.raise_for_status()
    return str(listed.json()["data"][0]["id"])


async def run_openai(
    *,
    name: str,
    base_url: str,
    prompts: PromptBuilder,
    levels: Sequence[tuple[int, list[str]]],
    warmup: int,
    max_tokens: int,
) -> dict[int, list[RequestResult]]:
    """Run every (concurrency, tags) level against a running OpenAI-compatible server, with
    the session sides' client settings (HTTP/1.1, a connection per stream)."""
    async with level_client(base_url, levels, warmup) as client:
        model = await served_model(client)

        async def one(tag: str) -> RequestResult:
            return await timed_chat(client, model, tag, prompts.text(tag), max_tokens)

        return await run_levels(name, one, levels, warmup)
