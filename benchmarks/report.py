"""The side-by-side table of the comparison run: a row per side (bare engine, streamchat's
transports, vLLM's OpenAI server), each side's output tokens/s as a ratio to the bare engine's."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

BASELINE = "bare"
# (header, summary key, format); a row per side keeps five sides within 100 columns.
COLUMNS = [
    ("TTFT p50", "ttft_p50_ms", "{:.0f}"),
    ("TTFT p99", "ttft_p99_ms", "{:.0f}"),
    ("ITL p50", "itl_p50_ms", "{:.1f}"),
    ("ITL p99", "itl_p99_ms", "{:.1f}"),
    ("tok/s", "output_tokens_per_s", "{:.1f}"),
]
# After the ratio: the same work on every side (tokens), and no side rode on another's prefix
# cache (the session sides and streamchat's OpenAI side share one server).
CHECKS = [
    ("tokens", "completion_tokens", "{:d}"),
    ("prompt", "mean_prompt_tokens", "{:.0f}"),
    ("cached", "mean_cached_tokens", "{:.0f}"),
    ("errors", "errors", "{:d}"),
]
# Above this many cores used by other processes, a side's figures are flagged as noisy.
NOISY_OTHER_CORES = 0.2
LABELS = {"bare": "bare engine", "sse": "SSE", "ws": "WebSocket",
          "openai": "OpenAI", "vllm": "vLLM server"}


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _cell(summary: Mapping[str, Any] | None, key: str, fmt: str) -> str:
    if summary is None:
        return "-"
    value = summary.get(key)
    return "-" if value is None or _nan(value) else fmt.format(value)


def ratio(side: Mapping[str, Any] | None, base: Mapping[str, Any] | None,
          key: str = "output_tokens_per_s") -> float | None:
    """side / base for one metric; None where either has no figure."""
    if not side or not base:
        return None
    num, den = side.get(key), base.get(key)
    if num is None or den is None or _nan(num) or _nan(den) or not den:
        return None
    return float(num) / float(den)


def report(concurrency: int, sides: Mapping[str, Mapping[str, Any] | None]) -> str:
    """One concurrency level: a row per side; `x bare` is its output tokens/s over bare's."""
    base = sides.get(BASELINE)
    first = next((s for s in sides.values() if s), {})
    lines = [
        f"concurrency {concurrency}, {first.get('requests', 0)} requests per side; TTFT and ITL "
        f"in ms, tok/s = output tokens/s, x bare = tok/s / the bare engine's",
        f"{'side':<12}" + "".join(f"{h:>10}" for h, _, _ in COLUMNS) + f"{'x bare':>8}"
        + "".join(f"{h:>8}" for h, _, _ in CHECKS),
    ]
    for name, summary in sides.items():
        if summary is None:
            continue
        r = ratio(summary, base)
        lines.append(f"{LABELS.get(name, name):<12}"
                     + "".join(f"{_cell(summary, key, fmt):>10}" for _, key, fmt in COLUMNS)
                     + f"{'-' if r is None else f'{r:.3f}':>8}"
                     + "".join(f"{_cell(summary, key, fmt):>8}" for _, key, fmt in CHECKS))
    noisy = [f"{LABELS.get(name, name)} {s['other_cpu_cores']:.2f}" for name, s in sides.items()
             if s and (s.get("other_cpu_cores") or 0) > NOISY_OTHER_CORES]
    if noisy:
        lines.append("noisy: other processes used cores meanwhile (" + ", ".join(noisy) + ")")
    return "\n".join(lines)
