"""Side 1: the bare in-process engine, `VllmEngine` called directly, no HTTP.

The timed path includes `render_chat` because the service does that work per message too; what
is left out is everything streamchat adds on top (sessions, event log, SSE, HTTP, the socket).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.server import SETTLE_S
from benchmarks.workload import PromptBuilder, RequestResult, TokenClock, run_levels


async def run_bare(
    *,
    model: str | None,
    model_name: str,
    cache_dir: Path,
    engine_args: Mapping[str, Any],
    prompts: PromptBuilder,
    levels: Sequence[tuple[int, list[str]]],
    warmup: int,
    max_tokens: int,
) -> dict[int, list[RequestResult]]:
    """Run every (concurrency, tags) level on one engine; it is shut down before returning."""
    from app.engine.base import ChatTurn, GenerationParams
    from app.engine.config import create_engine

    engine = create_engine(model, model_name, None, engine_args, cache_dir)
    # Same knobs as the SSE side can express: greedy, stop at EOS, max_tokens as the cap.
    params = GenerationParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    ids = itertools.count()

    async def one(tag: str) -> RequestResult:
        result = RequestResult(tag=tag, start_s=time.perf_counter(), sent_s=time.perf_counter())
        clock = TokenClock(result)
        try:
            prompt_ids = await engine.render_chat([ChatTurn("user", prompts.text(tag))])
            async for delta in engine.stream(prompt_ids, params, f"bench-{next(ids)}-{tag}"):
                now = time.perf_counter()
                if delta.prompt_tokens is not None:
                    result.prompt_tokens = delta.prompt_tokens
                    result.cached_tokens = delta.cached_tokens
                if delta.finish_reason is not None:
                    result.finish_reason = delta.finish_reason
                result.completion_tokens += delta.token_count
                clock.tokens(now, delta.token_count, visible=bool(delta.text))
        except Exception as exc:  # one failed request is a data point, not the end of the run
            result.error = f"{type(exc).__name__}: {exc}"
        result.end_s = time.perf_counter()
        return result

    await engine.start()
    try:
        return await run_levels("bare", one, levels, warmup)
    finally:
        await engine.shutdown()
        await asyncio.sleep(SETTLE_S)
