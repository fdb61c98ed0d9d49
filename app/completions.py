"""Stateless completions for the OpenAI-compatible API: prompt -> engine deltas, measured.

The same engine and the same per-step streaming as session replies, without a session or an
event log: an OpenAI client that leaves takes its request with it (the engine aborts at once).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from app import metrics
from app.engine.base import ChatTurn, Delta, Engine, GenerationParams
from app.errors import InvalidRequest

TRANSPORT = "openai"


class CompletionService:
    def __init__(self, engine: Engine, *, default_max_tokens: int = 512) -> None:
        self.engine = engine
        self.default_max_tokens = default_max_tokens

    async def chat_prompt(self, turns: Sequence[ChatTurn]) -> list[int]:
        return await self.engine.render_chat(turns)

    async def text_prompt(self, prompt: str | Sequence[int]) -> list[int]:
        if isinstance(prompt, str):
            return await self.engine.tokenize(prompt)
        return list(prompt)

    def fit(self, prompt_ids: Sequence[int], params: GenerationParams,
            max_tokens: int | None) -> GenerationParams:
        """Set max_tokens: the client's, checked against the context, or what the context leaves
        (up to the default)."""
        context = self.engine.max_model_len
        room = context - len(prompt_ids)
        if max_tokens is None:
            if room < 1:
                raise InvalidRequest(
                    f"This model's maximum context length is {context} tokens. However, your "
                    f"prompt is {len(prompt_ids)} tokens. Please shorten it.",
                    code="context_length_exceeded", param="messages")
            return replace(params, max_tokens=min(self.default_max_tokens, room))
        if max_tokens > room:
            raise InvalidRequest(
                f"This model's maximum context length is {context} tokens. However, you requested "
                f"{len(prompt_ids) + max_tokens} tokens ({len(prompt_ids)} in the prompt, "
                f"{max_tokens} in the completion). Please reduce the length of the prompt or "
                "the completion.", code="context_length_exceeded", param="max_tokens")
        return replace(params, max_tokens=max_tokens)

    async def stream(self, prompt_ids: Sequence[int], params: GenerationParams,
                     request_id: str) -> AsyncIterator[Delta]:
        """The engine's deltas, with the service's metrics recorded on the way."""
        accepted_at = time.monotonic()
        first_at = last_at = 0.0
        prompt_tokens, cached_tokens, completion_tokens, queue_s = len(prompt_ids), 0, 0, 0.0
        outcome = "done"
        itl = metrics.INTER_TOKEN_LATENCY.labels(TRANSPORT)
        metrics.ACTIVE_STREAMS.labels(TRANSPORT).inc()
        try:
            async for delta in self.engine.stream(prompt_ids, params, request_id):
                now = time.monotonic()
                if delta.prompt_tokens is not None:
                    prompt_tokens = delta.prompt_tokens
                    cached_tokens = delta.cached_tokens or 0
                if delta.queue_s is not None:
                    queue_s = delta.queue_s
                completion_tokens += delta.token_count
                if delta.text:
                    if not first_at:
                        first_at = now
                        metrics.TIME_TO_FIRST_TOKEN.labels(TRANSPORT).observe(now - accepted_at)
                    else:
                        itl.observe(now - last_at)
                    last_at = now
                yield delta
        except (asyncio.CancelledError, GeneratorExit):
            outcome = "disconnected"
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            metrics.ACTIVE_STREAMS.labels(TRANSPORT).dec()
            metrics.REQUESTS.labels(TRANSPORT, outcome).inc()
            metrics.REQUEST_DURATION.labels(TRANSPORT).observe(time.monotonic() - accepted_at)
            metrics.QUEUE_TIME.labels(TRANSPORT).observe(queue_s)
            metrics.GENERATED_TOKENS.inc(completion_tokens)
            metrics.PROMPT_TOKENS.inc(prompt_tokens)
            metrics.CACHED_PROMPT_TOKENS.inc(cached_tokens)
