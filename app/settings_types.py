"""How settings are read from text (the environment, CLI flags), and how a bad value is told:
one line naming the variable."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ValidationError

from app.host_names import split_host, split_origin

ENV_PREFIX = "STREAMCHAT_"


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


def _named_paths(value: Any) -> Any:
    """`name=path,name=path` (vLLM's --lora-modules form) as ((name, path), ...)."""
    if not isinstance(value, str):
        return value
    pairs = []
    for item in _split_commas(value):
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ValueError(f"must be name=path entries, comma-separated; got {item!r}")
        pairs.append((name.strip(), Path(path.strip()).expanduser()))
    return tuple(pairs)


def _host_patterns(value: tuple[str, ...]) -> tuple[str, ...]:
    for entry in value:
        if entry != "*":
            split_host(entry)  # a ValueError names the entry
    return tuple(entry.lower() for entry in value)


def _origins(value: tuple[str, ...]) -> tuple[str, ...]:
    """Each origin as a browser sends it in `Origin` (lowercase, no default port, no '/')."""
    normal = []
    for entry in value:
        if entry == "*":
            normal.append(entry)
            continue
        scheme, name, port = split_origin(entry.rstrip("/"))
        normal.append(f"{scheme}://{name}" + ("" if port is None else f":{port}"))
    return tuple(normal)


HostPatterns = Annotated[tuple[str, ...], BeforeValidator(_split_commas),
                         AfterValidator(_host_patterns)]
Origins = Annotated[tuple[str, ...], BeforeValidator(_split_commas), AfterValidator(_origins)]
NamedPaths = Annotated[tuple[tuple[str, Path], ...], BeforeValidator(_named_paths)]
JsonObject = Annotated[Mapping[str, Any], BeforeValidator(_json_object)]
UserPath = Annotated[Path, AfterValidator(_expand_user)]
LogLevel = Annotated[Literal["critical", "error", "warning", "info", "debug"], BeforeValidator(_lower)]
LogFormat = Annotated[Literal["json", "text"], BeforeValidator(_lower)]


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
        parts.append(f"{name} {what}" if err["loc"] else what)  # a rule across settings
    return "; ".join(parts)
