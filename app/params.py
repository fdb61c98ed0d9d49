"""Validation of the `params` object of sessions and messages (API.md), into GenerationParams."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from app.engine.base import GenerationParams
from app.errors import InvalidRequest

MAX_STOP_SEQUENCES = 8
MAX_STOP_LENGTH = 256


def _number(key: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidRequest(f"'{key}' must be a number", param=key)
    if not lo <= value <= hi:
        raise InvalidRequest(f"'{key}' must be between {lo:g} and {hi:g}, got {value}", param=key)
    return float(value)


def _integer(key: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"'{key}' must be an integer", param=key)
    if not lo <= value <= hi:
        raise InvalidRequest(f"'{key}' must be between {lo} and {hi}, got {value}", param=key)
    return value


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{key}' must be true or false", param=key)
    return value


def _stop(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) and s for s in items):
        raise InvalidRequest("'stop' must be a non-empty string or a list of them", param="stop")
    if len(items) > MAX_STOP_SEQUENCES or any(len(s) > MAX_STOP_LENGTH for s in items):
        raise InvalidRequest(
            f"'stop' takes at most {MAX_STOP_SEQUENCES} sequences of {MAX_STOP_LENGTH} characters",
            param="stop",
        )
    return tuple(items)


def _seed(value: Any) -> int | None:
    if value is None:
        return None
    return _integer("seed", value, -(2**63), 2**63 - 1)


# Each session/message param: how to check it. Ranges follow OpenAI's and vLLM's.
SESSION_PARAMS = {
    "temperature": lambda v: _number("temperature", v, 0.0, 2.0),
    "top_p": lambda v: _number("top_p", v, 1e-6, 1.0),
    "top_k": lambda v: _integer("top_k", v, -1, 1 << 20),
    "max_tokens": lambda v: _integer("max_tokens", v, 1, 1 << 20),
    "stop": _stop,
    "seed": _seed,
    "presence_penalty": lambda v: _number("presence_penalty", v, -2.0, 2.0),
    "frequency_penalty": lambda v: _number("frequency_penalty", v, -2.0, 2.0),
    # vLLM's extension, for fixed-length benchmark replies.
    "ignore_eos": lambda v: _boolean("ignore_eos", v),
}


def check_params(raw: Any) -> dict[str, Any]:
    """Validate a `params` object; returns it with normalised values. Unknown keys -> 400."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidRequest("'params' must be an object", param="params")
    unknown = sorted(set(raw) - set(SESSION_PARAMS))
    if unknown:
        raise InvalidRequest(
            f"unknown parameter(s): {', '.join(unknown)}; "
            f"known: {', '.join(SESSION_PARAMS)}",
            param=f"params.{unknown[0]}",
        )
    return {key: SESSION_PARAMS[key](value) for key, value in raw.items()}


def merge_params(base: GenerationParams, *layers: Mapping[str, Any]) -> GenerationParams:
    """Apply checked param layers in order: session defaults, then the message's own."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    return replace(base, **merged)
