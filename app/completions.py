"""Stateless completions for the OpenAI-compatible API: prompt -> engine deltas, measured.

The same engine, the same per-step streaming, the same token budget and the same meter as
session replies, without a session or an event log: an OpenAI client that leaves takes its
request with it (the engine aborts at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from dataclasses import replace

from app.engine.base import ChatTurn, Delta, Engine, GenerationParams
from app.lifecycle import Lifecycle
from app.metering import StreamMeter
from app.token_budget import reply_max_tokens

TRANSPORT = "openai"


class Completion:
    """One request: its deltas (`deltas()`, once), then its usage."""

    def __init__(self, service: CompletionService, prompt_ids: Sequence[int],
                 params: GenerationParams, request_id: str, accepted_at: float) -> None:
        self._service = service
        self._prompt_ids = prompt_ids
        self._params = params
        self._request_id = request_id
        self._accepted_at = accepted_at
        self._meter: StreamMeter | None = None

    def usage(self) -> dict[str, int]:
        """prompt_tokens, completion_tokens and cached_tokens, as the engine counted them."""
        if self._meter is None:
            return {"prompt_tokens": len(self._prompt_ids), "completion_tokens": 0,
                    "cached_tokens": 0}
        return self._meter.usage()

    async def deltas(self) -> AsyncGenerator[Delta, None]:
        # Metered from the first iteration: a response never sent counts as no stream at all.
        meter = self._meter = StreamMeter(TRANSPORT, len(self._prompt_ids), self._accepted_at)
        outcome = "done"
        try:
            with self._service.lifecycle.generation():
                async for delta in self._service.engine.stream(self._prompt_ids, self._params,
                                                               self._request_id):
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


class CompletionService:
    def __init__(self, engine: Engine, lifecycle: Lifecycle, *, default_max_tokens: int = 512) -> None:
        self.engine = engine
        self.lifecycle = lifecycle
        self.default_max_tokens = default_max_tokens

    async def chat(self, turns: Sequence[ChatTurn], params: GenerationParams,
                   requested: int | None, request_id: str, *, accepted_at: float) -> Completion:
        """A completion of the chat rendered with the model's template."""
        self.lifecycle.check_accepting()
        prompt_ids = await self.engine.render_chat(turns)
        return self._start(prompt_ids, params, requested, request_id, "messages", accepted_at)

    async def text(self, prompt: str | Sequence[int], params: GenerationParams,
                   requested: int | None, request_id: str, *, accepted_at: float) -> Completion:
        """A completion of a text prompt, or of token ids as given."""
        self.lifecycle.check_accepting()
        prompt_ids = await self.engine.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        return self._start(prompt_ids, params, requested, request_id, "prompt", accepted_at)

    def _start(self, prompt_ids: Sequence[int], params: GenerationParams, requested: int | None,
               request_id: str, prompt_param: str, accepted_at: float) -> Completion:
        max_tokens = reply_max_tokens(self.engine.max_model_len, len(prompt_ids), requested,
                                      self.default_max_tokens, prompt_param=prompt_param)
        return Completion(self, prompt_ids, replace(params, max_tokens=max_tokens), request_id,
                          accepted_at)
