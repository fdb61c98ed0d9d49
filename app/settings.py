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
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

ENV_PREFIX = "STREAMCHAT_"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
# vLLM engine arguments that have a setting of their own, which must be used instead.
RESERVED_ENGINE_ARGS = ("model", "served_model_name", "max_model_len")


class SettingsError(ValueError):
    """A setting has a value the service cannot start with."""


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


# Text forms: the environment and the CLI give strings; these types say how to read them.
def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


def _json_object(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"is not valid JSON: {exc.msg}") from None
    if not isinstance(value, Mapping):
        raise ValueError("must be a JSON object")
    return value


def _expand_user(path: Path) -> Path:
    return path.expanduser()


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


CommaSeparated = Annotated[tuple[str, ...], BeforeValidator(_split_commas)]
JsonObject = Annotated[Mapping[str, Any], BeforeValidator(_json_object)]
UserPath = Annotated[Path, AfterValidator(_expand_user)]
LogLevel = Annotated[Literal["critical", "error", "warning", "info", "debug"], BeforeValidator(_lower)]


class Settings(BaseModel):
    # Frozen: one value for the whole run, shareable and usable as a default argument.
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    host: str = Field(default="127.0.0.1", min_length=1, description="interface to listen on")
    port: int = Field(default=8000, ge=0, le=65535,
                      description="TCP port to listen on (0 picks a free one)")
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


def _number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">",
           "less_than_equal": "<=", "less_than": "<"}
_KINDS = {"int_parsing": "a whole number", "int_type": "a whole number",
          "int_from_float": "a whole number", "float_parsing": "a number",
          "float_type": "a number", "bool_parsing": "true or false", "bool_type": "true or false",
          "string_type": "text", "path_type": "a path"}


def describe(exc: ValidationError) -> str:
    """pydantic's errors as one line naming each variable, e.g. `STREAMCHAT_PORT must be ...`."""
    parts: list[str] = []
    for err in exc.errors(include_url=False):
        name = env_name(str(err["loc"][0])) if err["loc"] else "settings"
        kind, ctx, got = err["type"], err.get("ctx", {}), err["input"]
        if kind in _BOUNDS:
            bound = _number(ctx[next(iter(ctx))])
            what = f"must be {_BOUNDS[kind]} {bound}, got {got}"
        elif kind in _KINDS:
            what = f"must be {_KINDS[kind]}, got {got!r}"
        elif kind == "literal_error":
            what = f"must be one of {ctx['expected']}, got {got!r}"
        elif kind == "string_too_short":
            what = "must not be empty"
        elif kind == "value_error":
            what = str(ctx["error"])
        elif kind == "extra_forbidden":
            what = "is not a setting"
        else:
            what = f"is invalid ({err['msg']}), got {got!r}"
        parts.append(f"{name} {what}")
    return "; ".join(parts)


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
