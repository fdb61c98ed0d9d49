"""A reply's sampling parameters: the `params` object of sessions and messages (docs/API.md),
declared once and shared with the OpenAI-compatible request models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints, field_validator

from app.engine.base import GenerationParams
from app.validation import StrictModel

MAX_STOP_SEQUENCES = 8
MAX_BAD_WORDS = 128  # vLLM's VLLM_MAX_NUM_BAD_WORDS
MAX_STOP_LENGTH = 256

StopSequence = Annotated[str, StringConstraints(min_length=1, max_length=MAX_STOP_LENGTH)]
TokenId = Annotated[int, Field(ge=0, le=(1 << 31) - 1)]
# One string or a list of them; always a list once validated.
Stop = Annotated[list[StopSequence], Field(max_length=MAX_STOP_SEQUENCES),
                 BeforeValidator(lambda v: [v] if isinstance(v, str) else v)]


class SamplingFields(StrictModel):
    """Sampling fields, with the ranges OpenAI and vLLM accept."""

    temperature: Annotated[float, Field(ge=0.0, le=2.0, allow_inf_nan=False)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    top_k: Annotated[int, Field(ge=-1, le=1 << 20)] | None = None
    stop: Stop | None = None
    seed: Annotated[int, Field(ge=-(2**63), le=2**63 - 1)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] | None = None
    # vLLM's extension, for fixed-length benchmark replies.
    ignore_eos: bool | None = None
    # vLLM's extensions, with the ranges its SamplingParams accept. Token ids are checked
    # against the model's vocabulary by the engine (`Engine.check`).
    min_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    repetition_penalty: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None
    stop_token_ids: list[TokenId] | None = None
    min_tokens: Annotated[int, Field(ge=0, le=1 << 20)] | None = None
    bad_words: Annotated[list[StopSequence], Field(max_length=MAX_BAD_WORDS)] | None = None
    include_stop_str_in_output: bool | None = None
    # OpenAI's: token id (a string key in JSON) -> bias from -100 to 100.
    logit_bias: dict[str, Annotated[float, Field(ge=-100.0, le=100.0)]] | None = None

    @field_validator("logit_bias")
    @classmethod
    def _token_id_keys(cls, bias: dict[str, float] | None) -> dict[str, float] | None:
        for key in bias or {}:
            if not key.isdigit():
                raise ValueError(f"keys must be token ids (non-negative integers), got {key!r}")
        return bias


def engine_fields(sampling: Mapping[str, Any]) -> dict[str, Any]:
    """Validated sampling fields (JSON-shaped) as `GenerationParams` fields: lists become
    tuples, `logit_bias` (token id) pairs."""
    fields = dict(sampling)
    for name in ("stop", "stop_token_ids", "bad_words"):
        if name in fields:
            fields[name] = tuple(fields[name])
    if "logit_bias" in fields:
        fields["logit_bias"] = tuple(sorted((int(k), float(v))
                                            for k, v in fields["logit_bias"].items()))
    return fields


class ReplyParams(SamplingFields):
    """The `params` of a session (defaults for its replies) or of one message."""

    max_tokens: Annotated[int, Field(ge=1, le=1 << 20)] | None = None

    def stored(self) -> dict[str, Any]:
        """Only what the client set, JSON-ready: stored with the session."""
        return self.model_dump(exclude_none=True)


def merge_params(base: GenerationParams, *layers: Mapping[str, Any]) -> GenerationParams:
    """Apply stored param layers in order (session defaults, then the message's own) onto
    `base`; max_tokens is left to the token budget (app/token_budget.py)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    merged.pop("max_tokens", None)
    return replace(base, **engine_fields(merged))


def requested_max_tokens(*layers: Mapping[str, Any]) -> int | None:
    """The max_tokens the client asked for, the message's over the session's; None if unset."""
    for layer in reversed(layers):
        if layer.get("max_tokens") is not None:
            return int(layer["max_tokens"])
    return None
