"""Stateless completions for the OpenAI-compatible API: prompt -> engine deltas, measured.

The same generation (app/generation.py: admission, deadline, meter, per-key limits, abort
cause) and token budget as session replies, without a session or an event log: an OpenAI
client that leaves takes its request with it (the engine aborts at once). Its place is taken
before its prompt is tokenized or templated: a refused request costs neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from app.admission import Admission
from app.engine.base import ChatTurn, Engine, GenerationParams
from app.generation import Caller, Gate, Generation, Place
from app.lifecycle import Lifecycle
from app.limits import KeyLimits
from app.token_budget import reply_max_tokens

__all__ = ["Caller", "Completion", "CompletionService"]

TRANSPORT = "openai"


# What the OpenAI routes call one prompt's generation.
Completion = Generation


class CompletionService:
    def __init__(self, engine: Engine, lifecycle: Lifecycle, admission: Admission, *,
                 default_max_tokens: int = 512, max_reply_tokens: int | None = None,
                 max_seconds: float | None = None, limits: KeyLimits | None = None) -> None:
        self.engine = engine
        self.lifecycle = lifecycle
        self.gate = Gate(engine, lifecycle, admission, limits, max_seconds)
        self.default_max_tokens = default_max_tokens
        self.max_reply_tokens = max_reply_tokens

    async def chat(self, turns: Sequence[ChatTurn], params: GenerationParams,
                   requested: int | None, caller: Caller, *, add_generation_prompt: bool = True,
                   continue_final_message: bool = False,
                   tools: Sequence[dict[str, Any]] | None = None) -> Completion:
        """A completion of the chat rendered with the model's template (and its `tools`)."""
        self.lifecycle.check_accepting()
        place = await self.gate.reserve(caller, prompt_chars=sum(len(t.content) for t in turns))
        try:
            prompt_ids = await self.engine.render_chat(
                turns, add_generation_prompt=add_generation_prompt,
                continue_final_message=continue_final_message, tools=tools)
            return self._start(place, prompt_ids, params, requested, "messages")
        except BaseException:
            await place.release()
            raise

    async def text(self, prompt: str | Sequence[int], params: GenerationParams,
                   requested: int | None, caller: Caller) -> Completion:
        """A completion of a text prompt, or of token ids as given."""
        self.lifecycle.check_accepting()
        text = isinstance(prompt, str)
        place = await self.gate.reserve(caller, prompt_chars=len(prompt) if text else 0,
                                        prompt_tokens=None if text else len(prompt))
        try:
            prompt_ids = await self.engine.tokenize(prompt) if isinstance(prompt, str) \
                else list(prompt)
            return self._start(place, prompt_ids, params, requested, "prompt")
        except BaseException:
            await place.release()
            raise

    def _start(self, place: Place, prompt_ids: Sequence[int], params: GenerationParams,
               requested: int | None, prompt_param: str) -> Completion:
        max_tokens = reply_max_tokens(self.engine.max_model_len, len(prompt_ids), requested,
                                      self.default_max_tokens, prompt_param=prompt_param,
                                      cap=self.max_reply_tokens)
        params = replace(params, max_tokens=max_tokens)
        self.engine.check(params)  # a bad schema or token id is a 400 before anything starts
        return place.start(prompt_ids, params, transport=TRANSPORT)
