"""Stateless completions for the OpenAI-compatible API: prompt -> engine deltas, measured.

The same engine and the same per-step streaming as session replies, without a session or an
event log: an OpenAI client that leaves takes its request with it (the engine aborts at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from app.engine.base import ChatTurn, Delta, Engine, GenerationParams
from app.errors import InvalidRequest
from app.metering import StreamMeter

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
        meter = StreamMeter(TRANSPORT, len(prompt_ids))
        outcome = "done"
        try:
            async for delta in self.engine.stream(prompt_ids, params, request_id):
                meter.count(delta)
                if delta.text:
                    meter.shown()
                yield delta
        except (asyncio.CancelledError, GeneratorExit):
            outcome = "disconnected"
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            meter.finish(outcome)
