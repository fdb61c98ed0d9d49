"""Service settings: one frozen pydantic model, read from STREAMCHAT_* variables and CLI flags.

Each setting is declared once, as a field: name, type, default, constraints and help text. Its
environment variable (`env_name`) and CLI flag (`flag_name`) are derived from the name, and
`python -m app --help` is generated from the fields. Values are validated once, at start; a bad
one raises `SettingsError` with a single readable line naming the variable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from app.settings_access import AccessSettings
from app.settings_types import (
    CommaSeparated,
    JsonObject,
    LogFormat,
    LogLevel,
    NamedPaths,
    UserPath,
    describe,
    env_name,
    flag_name,
)

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
# vLLM engine arguments that have a setting of their own, which must be used instead.
RESERVED_ENGINE_ARGS = ("model", "served_model_name", "max_model_len")


class SettingsError(ValueError):
    """A setting has a value the service cannot start with."""


class Settings(AccessSettings):
    # Frozen: one value for the whole run, shareable and usable as a default argument.
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    model: str | None = Field(
        default=None, description="model to serve: a local folder or a Hugging Face id; "
        f"unset: {DEFAULT_MODEL_NAME}, converted once into the cache folder")
    served_model_name: str | None = Field(
        default=None, description="model name shown to clients; unset: the model folder's name")
    model_aliases: CommaSeparated = Field(
        default=(), description="other model names the OpenAI API accepts, comma-separated "
        "(e.g. open-autoglm)")
    max_model_len: int | None = Field(
        default=None, ge=16, description="context length in tokens; unset: the model's own")
    engine_args: JsonObject = Field(
        default_factory=dict, description="other vLLM engine arguments as a JSON object, "
        'e.g. \'{"max_num_seqs": 64, "enforce_eager": true}\'')
    cache_dir: UserPath = Field(
        default_factory=lambda: Path("~/.cache/streamchat").expanduser(),
        description="folder for the converted default model")
    orphan_grace_s: float = Field(
        default=10.0, ge=0,
        description="seconds a session reply keeps generating after its last listener left")
    redis_url: str | None = Field(
        default=None, description="Redis for sessions and reply streams shared by several "
        "replicas, e.g. redis://127.0.0.1:6379/0; unset: in memory, one replica")
    # At least 1.5 s: a follower's XREAD blocks 1 s (app/streams/redis.py) and must not time out.
    redis_timeout_s: float = Field(
        default=2.0, ge=1.5, le=60, description="seconds a Redis call may wait to connect, and "
        "again for its answer, before Redis counts as unreachable (503 store_unavailable, "
        "/ready 503 until it answers again)")
    max_sessions: int = Field(
        default=10_000, ge=1, description="sessions kept in memory; the least recently used go "
        "first (memory store)")
    session_ttl_s: float = Field(default=7 * 24 * 3600.0, gt=0,
                                 description="seconds an unused session is kept")
    max_body_bytes: int = Field(
        default=1 << 20, ge=1024,
        description="largest accepted request body (and WebSocket frame) in bytes")
    default_max_tokens: int = Field(
        default=512, ge=1, description="max_tokens of a reply when the request does not set it "
        "(capped by what the context leaves)")
    max_n: int = Field(default=8, ge=1, le=128,
                       description="largest `n` (choices per request) the OpenAI API accepts")
    log_level: LogLevel = Field(default="info",
                                description="critical | error | warning | info | debug")
    drain_timeout_s: float = Field(
        default=30.0, ge=0, description="seconds a replica keeps serving the streams in flight "
        "after SIGTERM before it stops (/ready answers 503 meanwhile)")
    engine_max_deaths: int = Field(
        default=3, ge=1, description="engine deaths within engine_death_window_s at which the "
        "replica stops starting a new engine in place: /health answers 503 and the process "
        "exits 1, for its orchestrator to replace it")
    engine_death_window_s: float = Field(
        default=300.0, gt=0, description="seconds over which engine deaths are counted")
    ssl_certfile: UserPath | None = Field(default=None, description="TLS certificate (PEM); "
                                          "with ssl_keyfile, serve https and wss")
    ssl_keyfile: UserPath | None = Field(default=None, description="TLS private key (PEM)")
    # -- admission control (app/admission/) --------------------------------------------
    max_concurrent_generations: int | None = Field(
        default=None, ge=1, description="generations in the engine at once; more wait in the "
        "admission queue; unset: the engine's max_num_seqs")
    max_prefilling: int = Field(
        default=4, ge=1, description="generations in the engine still waiting for their first "
        "token; more wait in the admission queue, in fair order, so a new prompt is not stuck "
        "behind every other prompt in the engine")
    max_prefill_tokens: int | None = Field(
        default=None, ge=0, description="prompt tokens the generations waiting for their first "
        "token may hold in the next engine step: its prefill, which is the gap it puts "
        "between the tokens of every stream decoding beside it; 0: no limit; unset: what the "
        "engine prefills in about a second, measured at start (the log says it)")
    anticipation_ms: int = Field(
        default=100, ge=0, description="while a user's last generation is two tokens from "
        "its end and this long after it ends, users with more generations in the engine start "
        "no new prompt (2 s at most without an admission): one coming straight back "
        "(an agent's next step, a client's next turn) gets the next engine step without a "
        "heavier user's prompt; 0: off")
    max_queue: int = Field(
        default=0, ge=0, description="generations that may wait for a place in the engine "
        "when every place is taken (waiting for one means waiting for a whole reply to end); "
        "past it, 429 with Retry-After at once. Prompts waiting only for max_prefilling never "
        "count against it")
    ttft_slo_ms: int | None = Field(
        default=None, ge=0, description="the time to first token (ms) admission promises to "
        "the requests it accepts: one whose first token is predicted later (from the prompt "
        "tokens ahead of it and the engine's measured pace) is refused at once, 429 with a "
        "Retry-After from the prediction; 0: no objective; unset: twice the wait of a lone "
        "prompt of the whole context, measured on this machine at start (the log says it)")
    prefix_warmup: bool = Field(
        default=False, description="once a session reply is stored, prefill the conversation's "
        "next prefix in the background, only while nobody waits: for models whose template "
        "renders a reply differently from the tokens generated (off: with the default model "
        "the prefix cache already holds the whole history, measured in docs/benchmarks.md)")
    max_message_chars: int = Field(
        default=100_000, ge=1, description="longest message content (or prompt) in characters")
    max_reply_tokens: int = Field(default=4096, ge=1,
                                  description="largest max_tokens a request may ask for")
    max_reply_seconds: float = Field(
        default=300.0, gt=0, description="a reply still generating after this many seconds is "
        "stopped (finish_reason length)")
    tool_call_parser: str | None = Field(
        default=None, min_length=1, description="vLLM's tool-call parser (its --tool-call-parser "
        "names, e.g. hermes): enables tool_choice auto; checked against the model at start")
    reasoning_parser: str | None = Field(
        default=None, min_length=1, description="vLLM's reasoning parser (its --reasoning-parser "
        "names, e.g. deepseek_r1, qwen3): a reply's reasoning kept apart (reasoning_content, "
        "reasoning events) and out of later prompts; checked against the model at start")
    # -- fine-tuning and LoRA adapters --------------------------------------------------
    fine_tuning: bool = Field(
        default=False, description="serve the fine-tuning API (/v1/files, /v1/fine_tuning/jobs) "
        "and LoRA adapters in the engine: a job's adapter is served as its fine_tuned_model")
    max_concurrent_jobs: int = Field(default=1, ge=1,
                                     description="fine-tuning jobs training at once")
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1,
                                  description="largest file POST /v1/files takes (413 past it)")
    lora_modules: NamedPaths = Field(
        default=(), description="LoRA adapters (peft folders) served from the start, "
        "comma-separated name=path entries as vLLM's --lora-modules; turns LoRA on")
    max_lora_rank: int = Field(default=16, ge=1,
                               description="largest LoRA rank the engine serves (vLLM's)")
    max_loras: int = Field(default=4, ge=1,
                           description="LoRA adapters one engine step serves at once (vLLM's)")
    # -- logs -----------------------------------------------------------------------------
    log_format: LogFormat | None = Field(
        default=None, description="json (one JSON line per request or stream) | text; unset: "
        "json when stdout is not a terminal")
    log_content: bool = Field(default=False,
                              description="log prompt and reply text (never by default)")

    @property
    def lora(self) -> bool:
        """Whether the engine serves LoRA adapters: for fine-tuning, or adapters named."""
        return self.fine_tuning or bool(self.lora_modules)

    @field_validator("model")
    @classmethod
    def _model_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank (leave it unset for the default)")
        return value

    @field_validator("model_aliases")
    @classmethod
    def _aliases_are_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not alias or "/" in alias for alias in value):
            raise ValueError(f"must be names without '/', got {','.join(value)!r}")
        return value

    @field_validator("engine_args")
    @classmethod
    def _no_reserved_engine_args(cls, value: Mapping[str, Any]) -> Mapping[str, Any]:
        for reserved in RESERVED_ENGINE_ARGS:
            if reserved in value:
                raise ValueError(f"must not set {reserved!r}, it has its own setting: use "
                                 f"{env_name(reserved)} or {flag_name(reserved)}")
        return value

    @model_validator(mode="after")
    def _pairs_complete(self) -> Settings:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("STREAMCHAT_SSL_CERTFILE and STREAMCHAT_SSL_KEYFILE go together")
        return self

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"must start with redis://, rediss:// or unix://, got {value!r}")
        return value

    def __hash__(self) -> int:
        # pydantic's frozen hash would fail on the engine_args dict; hash its JSON instead.
        args = json.dumps(self.engine_args, sort_keys=True, default=str)
        return hash((*(v for k, v in self.__dict__.items() if k != "engine_args"), args))

    @property
    def model_name(self) -> str:
        """The name clients see in `model` fields."""
        if self.served_model_name:
            return self.served_model_name
        if self.model is None:
            return DEFAULT_MODEL_NAME
        return self.model.rstrip("/").rsplit("/", 1)[-1]


def from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from STREAMCHAT_* variables, then `overrides` (CLI flags, which win), validated.

    Values may be text (as in the environment) or typed; an empty variable counts as unset, and
    so does an override of None.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name in Settings.model_fields:
        raw = environ.get(env_name(name))
        if raw:
            values[name] = raw
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise SettingsError(describe(exc)) from None
