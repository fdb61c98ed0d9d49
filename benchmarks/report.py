"""The side-by-side table of the comparison run: bare engine, SSE and WebSocket, with ratios."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

ROWS = [
    ("TTFT p50 (ms)", "ttft_p50_ms", "{:.1f}"),
    ("TTFT p99 (ms)", "ttft_p99_ms", "{:.1f}"),
    ("ITL p50 (ms)", "itl_p50_ms", "{:.2f}"),
    ("ITL p99 (ms)", "itl_p99_ms", "{:.2f}"),
    ("output tokens/s", "output_tokens_per_s", "{:.1f}"),
    ("completion tokens", "completion_tokens", "{:d}"),
    ("mean prompt tokens", "mean_prompt_tokens", "{:.1f}"),
    # Shows that no side rode on another's prefix cache (SSE and WS share one server).
    ("mean cached tokens", "mean_cached_tokens", "{:.1f}"),
    ("errors", "errors", "{:d}"),
]
BASELINE = "bare"


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _cell(summary: Mapping[str, Any] | None, key: str, fmt: str) -> str:
    if summary is None:
        return "-"
    value = summary[key]
    return "nan" if _nan(value) else fmt.format(value)


def _ratio(num: Mapping[str, Any] | None, den: Mapping[str, Any] | None, key: str) -> str:
    if not num or not den or not den[key] or _nan(den[key]) or _nan(num[key]):
        return "-"
    return f"{num[key] / den[key]:.2f}"


def report(concurrency: int, sides: Mapping[str, Mapping[str, Any] | None]) -> str:
    """One concurrency level: a column per side, then each other side's ratio to the baseline."""
    names = list(sides)
    others = [name for name in names if name != BASELINE]
    base = sides.get(BASELINE)
    first = next((s for s in sides.values() if s), {})
    lines = [
        f"concurrency {concurrency}, {first.get('requests', 0)} requests",
        f"{'metric':<20}" + "".join(f"{n:>12}" for n in names)
        + "".join(f"{n + '/' + BASELINE:>10}" for n in others),
    ]
    for label, key, fmt in ROWS:
        lines.append(f"{label:<20}" + "".join(f"{_cell(sides[n], key, fmt):>12}" for n in names)
                     + "".join(f"{_ratio(sides[n], base, key):>10}" for n in others))
    for name in others:
        side = sides[name]
        if base and side:
            diff = side["ttft_p50_ms"] - base["ttft_p50_ms"]
            lines.append(f"TTFT p50 difference, {name} - {BASELINE}: {diff:+.1f} ms")
    return "\n".join(lines)
