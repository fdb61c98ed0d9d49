"""Several prompts as one completion (OpenAI's `/v1/completions` with a list of prompts), and
`echo`: each prompt is its own engine request, and their choices are numbered as OpenAI does,
prompt_index * n + i. With `echo`, each choice's text starts with its prompt.

One prompt without `echo` needs none of this: its `Completion` is answered as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from dataclasses import replace
from typing import cast

from app.completions import Caller, Completion, CompletionService
from app.engine.base import Delta, GenerationParams

Prompt = str | Sequence[int]
_END = object()  # one prompt's deltas ended


class CompletionBatch:
    """The `Completion` interface (`deltas()` once, `usage()`, `release()`) over several."""

    def __init__(self, parts: Sequence[Completion], n: int, echoes: Sequence[str] | None) -> None:
        self._parts = list(parts)
        self._n = n
        self._echoes = echoes

    def usage(self) -> dict[str, int]:
        total = {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0}
        for part in self._parts:
            for key, value in part.usage().items():
                total[key] += value
        return total

    async def deltas(self, heartbeat_s: float | None = None) -> AsyncGenerator[Delta | None, None]:
        queue: asyncio.Queue[object] = asyncio.Queue()

        async def pump(k: int, part: Completion) -> None:
            try:
                # Heartbeats from the first prompt only: one ping per interval is enough.
                async with contextlib.aclosing(
                        part.deltas(heartbeat_s if k == 0 else None)) as deltas:
                    async for delta in deltas:
                        queue.put_nowait((k, delta))
            except Exception as exc:  # re-raised to the reader (Draining, EngineFailure ...)
                queue.put_nowait(exc)
            finally:
                queue.put_nowait(_END)

        tasks = [asyncio.create_task(pump(k, part)) for k, part in enumerate(self._parts)]
        echoed: set[int] = set()
        running = len(tasks)
        try:
            while running:
                item = await queue.get()
                if item is _END:
                    running -= 1
                    continue
                if isinstance(item, Exception):
                    raise item
                k, delta = cast("tuple[int, Delta | None]", item)
                if delta is None:
                    yield None
                    continue
                index = k * self._n + delta.index
                text = delta.text
                if self._echoes is not None and index not in echoed:
                    echoed.add(index)
                    text = self._echoes[k] + text
                yield replace(delta, index=index, text=text)
        finally:
            # A reader that left (or failed) takes every prompt's request with it.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def release(self) -> None:
        for part in self._parts:
            await part.release()


async def complete(service: CompletionService, prompts: Sequence[Prompt],
                   params: GenerationParams, requested: int | None, caller: Caller, *,
                   echo: bool = False) -> Completion | CompletionBatch:
    """Start a completion of each prompt (each admitted on its own); released together."""
    if len(prompts) == 1 and not echo:
        return await service.text(prompts[0], params, requested, caller)
    parts: list[Completion] = []
    try:
        for prompt in prompts:
            parts.append(await service.text(prompt, params, requested, caller))
        echoes = [p if isinstance(p, str) else await service.engine.detokenize(p)
                  for p in prompts] if echo else None
    except BaseException:
        for part in parts:  # a later prompt refused (429, 400): the earlier ones go too
            await part.release()
        raise
    return CompletionBatch(parts, params.n, echoes)
