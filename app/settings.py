"""Service settings: one frozen dataclass, read from STREAMCHAT_* variables and CLI flags.

Every setting has an environment variable; `python -m app --help` lists them all. Values are
validated once, at start, and a bad one raises `SettingsError` with a single readable line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ENV_PREFIX = "STREAMCHAT_"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"


class SettingsError(ValueError):
    """A setting has a value the service cannot start with."""


def _default_cache_dir() -> Path:
    return Path(os.path.expanduser("~/.cache/streamchat"))


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    # A local folder or a Hugging Face id; None means the converted default model.
    model: str | None = None
    served_model_name: str | None = None
    # Other names clients may use for the served model, e.g. ("open-autoglm",).
    model_aliases: tuple[str, ...] = ()
    max_model_len: int | None = None
    # Any other vLLM AsyncEngineArgs field, e.g. {"max_num_seqs": 64}.
    engine_args: Mapping[str, Any] = field(default_factory=dict)
    cache_dir: Path = field(default_factory=_default_cache_dir)
    orphan_grace_s: float = 10.0
    # Sessions in Redis, shared by every replica pointing at it; memory when unset.
    redis_url: str | None = None
    max_sessions: int = 10_000
    session_ttl_s: float = 7 * 24 * 3600.0
    max_body_bytes: int = 1 << 20
    default_max_tokens: int = 512
    max_n: int = 8
    log_level: str = "info"

    @property
    def model_name(self) -> str:
        """The name clients see in `model` fields."""
        if self.served_model_name:
            return self.served_model_name
        if self.model is None:
            return DEFAULT_MODEL_NAME
        return self.model.rstrip("/").rsplit("/", 1)[-1]

    def validate(self) -> Settings:
        if not self.host:
            raise SettingsError("STREAMCHAT_HOST must not be empty")
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"STREAMCHAT_PORT must be 0-65535, got {self.port}")
        if self.max_model_len is not None and self.max_model_len < 16:
            raise SettingsError(f"STREAMCHAT_MAX_MODEL_LEN must be >= 16, got {self.max_model_len}")
        if self.orphan_grace_s < 0:
            raise SettingsError(f"STREAMCHAT_ORPHAN_GRACE_S must be >= 0, got {self.orphan_grace_s}")
        if self.redis_url is not None and not self.redis_url.startswith(
                ("redis://", "rediss://", "unix://")):
            raise SettingsError("STREAMCHAT_REDIS_URL must start with redis://, rediss:// or "
                                f"unix://, got {self.redis_url!r}")
        if not 1 <= self.max_n <= 128:
            raise SettingsError(f"STREAMCHAT_MAX_N must be 1-128, got {self.max_n}")
        if any(not alias or "/" in alias for alias in self.model_aliases):
            raise SettingsError(
                f"STREAMCHAT_MODEL_ALIASES must be names without '/', got {self.model_aliases}")
        if self.max_sessions < 1:
            raise SettingsError(f"STREAMCHAT_MAX_SESSIONS must be >= 1, got {self.max_sessions}")
        if self.session_ttl_s <= 0:
            raise SettingsError(f"STREAMCHAT_SESSION_TTL_S must be > 0, got {self.session_ttl_s}")
        if self.max_body_bytes < 1024:
            raise SettingsError(f"STREAMCHAT_MAX_BODY_BYTES must be >= 1024, got {self.max_body_bytes}")
        if self.default_max_tokens < 1:
            raise SettingsError(
                f"STREAMCHAT_DEFAULT_MAX_TOKENS must be >= 1, got {self.default_max_tokens}"
            )
        if self.log_level.lower() not in {"critical", "error", "warning", "info", "debug"}:
            raise SettingsError(f"STREAMCHAT_LOG_LEVEL must be a logging level, got {self.log_level!r}")
        if self.model is not None and not self.model.strip():
            raise SettingsError("STREAMCHAT_MODEL must not be empty (leave it unset for the default)")
        for reserved in ("model", "served_model_name", "max_model_len"):
            if reserved in self.engine_args:
                raise SettingsError(
                    f"engine argument {reserved!r} has its own setting: use STREAMCHAT_{reserved.upper()}"
                )
        return self


# name -> (parser, help); the order is the order of --help.
SETTING_HELP: dict[str, str] = {
    "host": "interface to listen on",
    "port": "TCP port to listen on (0 picks a free one)",
    "model": "model to serve: a local folder or a Hugging Face id "
    "(default: SmolLM2-135M-Instruct, converted once into the cache folder)",
    "served_model_name": "model name shown to clients (default: the model folder's name)",
    "model_aliases": "other model names the OpenAI API accepts, comma-separated "
    "(e.g. open-autoglm)",
    "max_model_len": "context length in tokens (default: the model's own)",
    "engine_args": "other vLLM engine arguments as a JSON object, "
    'e.g. \'{"max_num_seqs": 64, "enforce_eager": true}\'',
    "cache_dir": "folder for the converted default model",
    "orphan_grace_s": "seconds a session reply keeps generating after its last listener left",
    "redis_url": "Redis for sessions and reply streams shared by several replicas, "
    "e.g. redis://127.0.0.1:6379/0 (default: in memory, one replica)",
    "max_sessions": "sessions kept in memory; the least recently used go first (memory store)",
    "session_ttl_s": "seconds an unused session is kept",
    "max_body_bytes": "largest accepted request body (and WebSocket frame) in bytes",
    "default_max_tokens": "max_tokens of a reply when the request does not set it "
    "(capped by what the context leaves)",
    "max_n": "largest `n` (choices per request) the OpenAI API accepts",
    "log_level": "critical | error | warning | info | debug",
}


def _parse_engine_args(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"STREAMCHAT_ENGINE_ARGS is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise SettingsError("STREAMCHAT_ENGINE_ARGS must be a JSON object")
    return value


_PARSERS: dict[str, Callable[[str], Any]] = {
    "host": str,
    "port": int,
    "model": str,
    "served_model_name": str,
    "model_aliases": lambda raw: tuple(a.strip() for a in raw.split(",") if a.strip()),
    "max_model_len": int,
    "engine_args": _parse_engine_args,
    "cache_dir": lambda raw: Path(os.path.expanduser(raw)),
    "orphan_grace_s": float,
    "redis_url": str,
    "max_sessions": int,
    "session_ttl_s": float,
    "max_body_bytes": int,
    "default_max_tokens": int,
    "max_n": int,
    "log_level": str,
}


def parse_value(name: str, raw: str) -> Any:
    """Parse one setting from its text form, naming the variable when it fails."""
    try:
        return _PARSERS[name](raw)
    except SettingsError:
        raise
    except ValueError:
        raise SettingsError(f"{ENV_PREFIX}{name.upper()}: cannot read {raw!r}") from None


def from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, then `overrides` (CLI flags), validated."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = environ.get(ENV_PREFIX + f.name.upper())
        if raw is not None and raw != "":
            values[f.name] = parse_value(f.name, raw)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values).validate()


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    return replace(settings, **changes).validate()
