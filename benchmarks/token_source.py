"""A token source with no model, for measuring the transport's ceiling (benchmarks only).

It implements the service's `Engine` protocol the way vLLM's AsyncLLM behaves towards it.
One step gives every running request one token, and a request whose consumer missed steps
gets their tokens merged into one delta (vLLM's RequestOutputCollector does the same in delta
mode). Paced, a step comes every 1/tokens_per_s seconds, on a fixed schedule; flat out, at
every turn of the event loop, so the app's events/s is all the app can deliver. The source
costs the app's event loop little (a future per waiting request per step, as vLLM's own
collectors cost), so what is measured is the app.

Every token's text is `~<hex>;`: the monotonic microsecond at which its step was due. Clients
on the same machine read the same clock (CLOCK_MONOTONIC), so receipt time minus that stamp
is the latency the app added to the token, including any lag of the event loop the steps and
the app share (as the real engine's output handler shares it).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

from app.engine.base import ChatTurn, Delta, EngineStats, GenerationParams
from app.errors import ConfigError

RECENT = 1024  # steps kept for streams that fell behind
TOKEN_PREFIX = "~"
TOKEN_SUFFIX = ";"


def stamp_token(due_us: int) -> str:
    return f"{TOKEN_PREFIX}{due_us:x}{TOKEN_SUFFIX}"


class TokenSource:
    """The `Engine` protocol with no model: tokens on a step schedule, as many requests as asked."""

    model_name = "token-source"

    def __init__(self, tokens_per_s: float | None, *, max_num_seqs: int = 8192,
                 max_model_len: int = 1 << 24) -> None:
        self.tokens_per_s = tokens_per_s  # per request; None: flat out
        self.max_num_seqs = max_num_seqs
        self.max_model_len = max_model_len
        self.running = 0
        self._stepper: asyncio.Task[None] | None = None
        # The recent steps' tokens (a stream further behind gets the last RECENT merged), and
        # the streams waiting for the next step: a future each, as a shared one would be
        # cancelled for all by one stream's cancellation.
        self._steps_done = 0
        self._recent: deque[str] = deque(maxlen=RECENT)
        self._waiting: list[asyncio.Future[None]] = []
        self._someone_waits = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self._stepper is not None

    async def start(self) -> None:
        interval = 1.0 / self.tokens_per_s if self.tokens_per_s else 0.0
        self._stepper = asyncio.create_task(self._step_forever(interval))

    async def shutdown(self) -> None:
        if self._stepper is not None:
            self._stepper.cancel()
            self._stepper = None

    async def render_chat(self, turns: Sequence[ChatTurn], *,
                          add_generation_prompt: bool = True,
                          continue_final_message: bool = False,
                          tools: Sequence[dict[str, Any]] | None = None) -> list[int]:
        ids = [1] * sum(4 + len(turn.content) // 4 for turn in turns)  # ~4 characters a token
        return [*ids, 2] if add_generation_prompt and not continue_final_message else ids

    async def tokenize(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return [1] * (len(text) // 4 + 1)

    def tool_parser(self, name: str, tools: Sequence[dict[str, Any]] | None) -> Any:
        raise ConfigError("the token source has no tokenizer for a tool-call parser")

    def reasoning_parser(self, name: str) -> Any:
        raise ConfigError("the token source has no tokenizer for a reasoning parser")

    async def token_strs(self, token_ids: Sequence[int]) -> list[str]:
        return ["x" for _ in token_ids]

    async def detokenize(self, token_ids: Sequence[int]) -> str:
        return "xxxx" * len(token_ids)

    def check(self, params: GenerationParams) -> None:
        pass  # every token id is 1

    def stats(self) -> EngineStats:
        return EngineStats(running=self.running)

    async def _step_forever(self, interval: float) -> None:
        # time.monotonic, not loop.time(): uvloop's clock is libuv's, cached per loop turn in ms.
        due = time.monotonic()
        while True:
            if interval:
                # A fixed schedule: a late step is not pushed back, so lag shows as latency.
                due += interval
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            else:  # flat out: a step per turn of the event loop, while a stream waits for one
                await self._someone_waits.wait()
                await asyncio.sleep(0)
                due = time.monotonic()
            self._recent.append(stamp_token(int(due * 1e6)))
            self._steps_done += 1
            self._someone_waits.clear()
            waiting, self._waiting = self._waiting, []
            for waiter in waiting:
                if not waiter.done():
                    waiter.set_result(None)

    async def _steps(self, max_tokens: int) -> AsyncIterator[list[str]]:
        """Each step's token from the first step after the request came; steps it was too busy
        to wait for come merged into one delta, as vLLM's output collector merges them."""
        seen = self._steps_done
        while max_tokens > 0:
            if seen == self._steps_done:
                waiter = asyncio.get_running_loop().create_future()
                self._waiting.append(waiter)
                self._someone_waits.set()
                await waiter
            behind = min(self._steps_done - seen, len(self._recent), max_tokens)
            texts = list(itertools.islice(self._recent, len(self._recent) - behind, None))
            seen = self._steps_done
            max_tokens -= len(texts)
            yield texts

    async def stream(self, prompt_token_ids: Sequence[int], params: GenerationParams,
                     request_id: str, priority: int = 0) -> AsyncIterator[Delta]:
        self.running += 1
        sent = 0
        try:
            async for texts in self._steps(params.max_tokens):
                first = sent == 0
                sent += len(texts)
                last = sent >= params.max_tokens
                yield Delta(index=0, text="".join(texts), token_count=len(texts),
                            prompt_tokens=len(prompt_token_ids) if first else None,
                            cached_tokens=0 if first else None,
                            finish_reason="length" if last else None,
                            queue_s=0.0 if last else None)
        finally:
            self.running -= 1
