"""The shared workload: prompts, the closed-loop runner, per-request timing and stats.

Everything here is transport-agnostic so that the bare engine, the SSE endpoint and the
WebSocket are measured with exactly the same prompts, concurrency and arithmetic.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.cpu_share import OtherCpu
from benchmarks.stats import percentile

# Repeated to reach the prompt length; plain prose keeps the tokenizer's count predictable.
SENTENCE = "The quick brown fox jumps over the lazy dog beside the quiet river bank. "
QUESTION = "Describe what the fox does, in your own words."


def prompt_text(tag: str, repeats: int) -> str:
    """The user turn for one request.

    The tag goes first so that every request's first KV block differs: without it all requests
    would share one cached prefix and TTFT would measure the prefix cache, not prefill.
    """
    return f"Request {tag}. " + SENTENCE * repeats + QUESTION


class PromptBuilder:
    """Finds how many sentence repeats give a rendered chat of about `target` tokens.

    Counts use the model's own tokenizer and chat template, rendered the way
    `VllmEngine.render_chat` does, so both sides see the same prompt ids.
    """

    def __init__(self, model_dir: str, target_tokens: int) -> None:
        from transformers import AutoTokenizer  # heavy: only when a run starts, not for --help

        self._tok = AutoTokenizer.from_pretrained(model_dir)
        self.target_tokens = target_tokens
        self.repeats = self._fit(target_tokens)

    def count(self, text: str) -> int:
        rendered = self._tok.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        return len(self._tok.encode(rendered, add_special_tokens=False))

    def _fit(self, target: int) -> int:
        base = self.count(prompt_text("c00-r000", 0))
        per = self.count(prompt_text("c00-r000", 10)) - base
        guess = max(0, round((target - base) / max(per / 10, 1e-9)))
        # Refine around the linear guess: token merges at sentence joins make it inexact.
        candidates = range(max(0, guess - 2), guess + 3)
        return min(candidates, key=lambda k: abs(self.count(prompt_text("c00-r000", k)) - target))

    def text(self, tag: str) -> str:
        return prompt_text(tag, self.repeats)


@dataclass
class RequestResult:
    tag: str
    start_s: float  # perf_counter when the chat began (SSE: before creating the session)
    sent_s: float  # perf_counter when the generation request went out (TTFT starts here)
    end_s: float = 0.0
    ttft_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    completion_tokens: int = 0
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    finish_reason: str | None = None
    error: str | None = None
    # The server's own view from the done event (queue_ms, ttft_ms, ...): tells client-side
    # and transport overhead apart from time spent in the server and the engine.
    server_timings: dict[str, float] | None = None

    def summary(self) -> dict[str, Any]:
        """Per-request record for the JSON file (the raw ITL list would dwarf everything else)."""
        data = asdict(self)
        data.pop("itl_s")
        data["itl_mean_ms"] = 1000 * sum(self.itl_s) / len(self.itl_s) if self.itl_s else None
        data["token_events"] = len(self.itl_s)
        return data


class TokenClock:
    """Turns token arrivals into TTFT and inter-token latencies.

    Same rule as the service: tokens without text (e.g. end-of-sequence) are counted but carried
    into the next visible event. An event with n tokens after a gap g gives n samples of g/n,
    so that batched deltas do not look like one slow token.
    """

    def __init__(self, result: RequestResult) -> None:
        self._r = result
        self._last: float | None = None
        self._pending = 0

    def tokens(self, now: float, n: int, visible: bool = True) -> None:
        self._pending += n
        if not visible or self._pending <= 0:
            return
        n, self._pending = self._pending, 0
        if self._last is None:
            self._r.ttft_s = now - self._r.sent_s
        else:
            gap = (now - self._last) / n
            self._r.itl_s.extend([gap] * n)
        self._last = now


async def run_closed_loop(
    one: Callable[[str], Awaitable[RequestResult]], tags: Sequence[str], concurrency: int,
    on_done: Callable[[RequestResult], object] | None = None,
) -> list[RequestResult]:
    """`concurrency` simulated users, each starting its next chat as soon as the last ended;
    `on_done` sees each result as it comes (progress)."""
    queue = list(reversed(tags))
    results: list[RequestResult] = []

    async def user() -> None:
        while queue:
            result = await one(queue.pop())
            results.append(result)
            if on_done is not None:
                on_done(result)

    await asyncio.gather(*(user() for _ in range(min(concurrency, len(tags)))))
    return results




def summarize(side: str, concurrency: int, results: Sequence[RequestResult]) -> dict[str, Any]:
    ok = [r for r in results if r.error is None]
    ttft = [r.ttft_s for r in ok if r.ttft_s is not None]
    itl = [gap for r in ok for gap in r.itl_s]
    tokens = sum(r.completion_tokens for r in ok)
    # Throughput over the whole run: first chat started -> last reply finished.
    wall = (max(r.end_s for r in results) - min(r.start_s for r in results)) if results else 0.0
    prompts = [r.prompt_tokens for r in ok if r.prompt_tokens is not None]
    cached = [r.cached_tokens for r in ok if r.cached_tokens is not None]
    return {
        "side": side,
        "concurrency": concurrency,
        "requests": len(results),
        "errors": len(results) - len(ok),
        "error_samples": sorted({r.error for r in results if r.error})[:5],
        "wall_s": wall,
        "completion_tokens": tokens,
        "output_tokens_per_s": tokens / wall if wall > 0 else math.nan,
        "ttft_p50_ms": 1000 * percentile(ttft, 50),
        "ttft_p99_ms": 1000 * percentile(ttft, 99),
        "itl_p50_ms": 1000 * percentile(itl, 50),
        "itl_p99_ms": 1000 * percentile(itl, 99),
        "mean_prompt_tokens": sum(prompts) / len(prompts) if prompts else math.nan,
        "mean_cached_tokens": sum(cached) / len(cached) if cached else math.nan,
        "mean_completion_tokens": tokens / len(ok) if ok else math.nan,
        "finish_reasons": _count(r.finish_reason or "none" for r in ok),
        # Cores other processes used meanwhile (benchmarks/cpu_share.py): noise, if well above 0.
        "other_cpu_cores": getattr(results, "other_cpu_cores", None),
        "per_request": [r.summary() for r in results],
    }


def _count(items: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


async def run_levels(name: str, one: Callable[[str], Awaitable[RequestResult]],
                     levels: Sequence[tuple[int, list[str]]],
                     warmup: int) -> dict[int, list[RequestResult]]:
    """Warm up, then run every (concurrency, tags) level in turn with the same request function."""
    if warmup:
        await run_closed_loop(one, [f"warm-{name}-{i}" for i in range(warmup)], warmup)
    results: dict[int, list[RequestResult]] = {}
    for concurrency, tags in levels:
        print(f"[bench] {name}: concurrency {concurrency}, {len(tags)} requests", flush=True)
        others = OtherCpu()
        with Progress(name, concurrency, len(tags)) as bar:
            level = LevelResults(await run_closed_loop(one, tags, concurrency, bar.done))
        level.other_cpu_cores = others.cores()
        results[concurrency] = level
    return results


class LevelResults(list[RequestResult]):
    """One level's results, with the cores other processes used while it ran."""

    other_cpu_cores: float | None = None


class Progress:
    """Requests completed in one level, as a tqdm bar on stderr. Only on a terminal
    (`disable=None`): a log file or a suite runner's capture gets the plain `[bench]` lines,
    not carriage-return redraws."""

    def __init__(self, name: str, concurrency: int, total: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, desc=f"{name} c{concurrency}", unit="req",
                         file=sys.stderr, disable=None, leave=True, dynamic_ncols=True)
        self._errors = 0

    def done(self, result: RequestResult) -> None:
        if result.error is not None:
            self._errors += 1
            self._bar.set_postfix(errors=self._errors, refresh=False)
        self._bar.update(1)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()
