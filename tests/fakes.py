"""A scripted engine for transport tests: no model, exact control over tokens and timing.

It lives in tests/ only; the service always runs the real vLLM engine."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from app.engine import reasoning_parsers
from app.engine.base import (
    ChatTurn,
    Delta,
    EngineStats,
    GenerationParams,
    LoraAdapter,
    PromptLogprob,
    TokenLogprob,
)
from app.engine.tool_parsers import new_parser
from app.errors import InvalidRequest

# Think tokens, one id each, as a reasoning model's tokenizer has them (vLLM's reasoning
# parsers find them by id).
THINK_TOKENS = {"<think>": 0x110002, "</think>": 0x110003}


class _CharTokenizer:
    """Enough of a tokenizer for vLLM's text-based tool parsers (hermes) and its reasoning
    parsers (deepseek_r1, qwen3): one id per char, one per think token."""

    def get_vocab(self) -> dict[str, int]:
        return {"<tool_call>": 0x110000, "</tool_call>": 0x110001, **THINK_TOKENS}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, token_ids: Sequence[int]) -> str:
        names = {i: name for name, i in THINK_TOKENS.items()}
        return "".join(names.get(i) or chr(i) for i in token_ids)


def token_ids(text: str) -> list[int]:
    """A scripted piece's token ids: a think token is one id, any other char its code point."""
    ids: list[int] = []
    for i, part in enumerate(re.split("(</?think>)", text)):
        ids += [THINK_TOKENS[part]] if i % 2 else [ord(c) for c in part]
    return ids


class ScriptedEngine:
    model_name = "scripted"
    vocab_size = 0x110000  # a token id is a code point

    def __init__(self, tokens: Sequence[str] = ("Hel", "lo", " there", "!"), *,
                 delay_s: float = 0.0, max_model_len: int = 256, ready: bool = True,
                 prefill_s: float = 0.0, max_num_seqs: int = 128) -> None:
        self.tokens = list(tokens)
        self.delay_s = delay_s
        self.prefill_s = prefill_s  # before the first token, on top of delay_s
        self.max_model_len = max_model_len
        self.max_num_seqs = max_num_seqs
        self.priorities: list[int] = []
        self._ready = ready
        self.started = asyncio.Event()  # set when a stream begins
        # When an Event: every stream, once begun, waits for it to be set before its first
        # token (a prompt held in prefill for exactly as long as a test needs).
        self.proceed: asyncio.Event | None = None
        self.yielded = 0  # deltas yielded so far, every stream together
        self.aborted: list[str] = []
        self.finished: list[str] = []
        self.running: set[str] = set()
        self.prompts: list[list[int]] = []
        self.params: list[GenerationParams] = []
        self.loras: dict[int, LoraAdapter] = {}  # loaded in the engine, by lora id
        self.renders: list[tuple[bool, bool]] = []  # (add_generation_prompt, continue_final_message)
        self.rendered: list[tuple[list[ChatTurn], list[dict[str, Any]] | None]] = []  # turns, tools
        self._dead = asyncio.Event()  # set by die(): what died() waits for
        self.restarts = 0  # restart() calls, failed ones included
        self.failing_restarts = 0  # how many restarts to come fail (as a core killed while loading)

    @property
    def ready(self) -> bool:
        return self._ready

    async def start(self) -> None:
        self._ready = True

    async def shutdown(self) -> None:
        self._ready = False

    def die(self) -> None:
        """The engine's core process is gone (as SIGKILLed): not ready, died() returns."""
        self._ready = False
        self._dead.set()

    async def died(self) -> None:
        await self._dead.wait()

    async def restart(self) -> None:
        self.restarts += 1
        self._dead = asyncio.Event()
        self.loras = {}  # a new engine has none loaded
        if self.failing_restarts > 0:
            self.failing_restarts -= 1
            raise RuntimeError("the new engine core died while it loaded")
        self._ready = True

    async def render_chat(self, turns: Sequence[ChatTurn], *,
                          add_generation_prompt: bool = True,
                          continue_final_message: bool = False,
                          tools: Sequence[dict[str, Any]] | None = None) -> list[int]:
        # One "token" per character plus a few per turn, like a real template's markers.
        self.renders.append((add_generation_prompt, continue_final_message))
        self.rendered.append((list(turns), list(tools) if tools is not None else None))
        ids: list[int] = []
        for turn in turns:
            ids += [1, 2] + [ord(c) % 1000 for c in turn.content] + [3]
        if continue_final_message:
            return ids[:-1]  # the last turn left open
        return [*ids, 1, 2] if add_generation_prompt else ids

    def tool_parser(self, name: str, tools: Sequence[dict[str, Any]] | None) -> Any:
        return new_parser(name, _CharTokenizer(), tools)

    def reasoning_parser(self, name: str) -> Any:
        return reasoning_parsers.new_parser(name, _CharTokenizer())

    async def tokenize(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return ([1] if add_special_tokens else []) + [ord(c) for c in text]

    async def token_strs(self, token_ids: Sequence[int]) -> list[str]:
        return [chr(i) for i in token_ids]

    async def detokenize(self, token_ids: Sequence[int]) -> str:
        if any(i >= self.vocab_size for i in token_ids):
            raise InvalidRequest("'tokens': out-of-vocab token ids", param="tokens")
        return "".join(chr(i) for i in token_ids if i != 1)

    def check(self, params: GenerationParams) -> None:
        # vLLM's own checks that need the model: token ids within the vocabulary.
        for param, ids in (("logit_bias", [i for i, _ in params.logit_bias]),
                           ("stop_token_ids", list(params.stop_token_ids))):
            if any(i >= self.vocab_size for i in ids):
                raise InvalidRequest(f"'{param}': out-of-vocab token ids", param=param)

    def stats(self) -> EngineStats:
        return EngineStats(running=len(self.running))

    async def add_lora(self, adapter: LoraAdapter) -> None:
        if "broken" in adapter.path:  # what vLLM says of weights it cannot load
            raise InvalidRequest(f"could not load the LoRA adapter at {adapter.path}",
                                 param="lora_path")
        self.loras[adapter.lora_id] = adapter

    async def remove_lora(self, lora_id: int) -> None:
        self.loras.pop(lora_id, None)

    async def stream(self, prompt_token_ids: Sequence[int], params: GenerationParams,
                     request_id: str, priority: int = 0) -> AsyncIterator[Delta]:
        self.prompts.append(list(prompt_token_ids))
        self.params.append(params)
        self.priorities.append(priority)
        self.running.add(request_id)
        self.started.set()
        tokens = self.tokens[: params.max_tokens]
        try:
            if self.proceed is not None:
                await self.proceed.wait()
            if self.prefill_s:
                await asyncio.sleep(self.prefill_s)
            for i, text in enumerate(tokens):
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                last = i == len(tokens) - 1
                finish = None
                if last:
                    finish = "length" if len(self.tokens) > params.max_tokens else "stop"
                logprobs = None
                if params.logprobs is not None:
                    logprobs = [TokenLogprob(text, -0.5, ((text, -0.5), ("zz", -1.5), ("yy", -2.0)))]
                for index in range(params.n):  # every choice the same: the script is the script
                    self.yielded += 1
                    yield Delta(index=index, text=text, token_count=1, finish_reason=finish,
                                token_ids=token_ids(text),
                                prompt_tokens=len(prompt_token_ids) if i == 0 and index == 0
                                else None, cached_tokens=0 if i == 0 and index == 0 else None,
                                queue_s=0.001 if last else None, logprobs=logprobs,
                                prompt_logprobs=self._prompt_logprobs(prompt_token_ids, params)
                                if i == 0 and index == 0 else None)
            self.finished.append(request_id)
        except (asyncio.CancelledError, GeneratorExit):
            # What vLLM does when its generate() consumer is cancelled: abort the request.
            self.aborted.append(request_id)
            raise
        finally:
            self.running.discard(request_id)

    @staticmethod
    def _prompt_logprobs(prompt: Sequence[int], params: GenerationParams,
                         ) -> list[dict[int, PromptLogprob] | None] | None:
        if params.prompt_logprobs is None:
            return None
        return [None, *({t: PromptLogprob(-1.0, 1, chr(t))} for t in prompt[1:])]
