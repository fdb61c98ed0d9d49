"""Declared request models, and the one rule that turns their validation errors into the
contract's error: `InvalidRequest` naming the offending parameter.

Every body, frame and params object is a `StrictModel`: unknown keys are refused (code
`unknown_parameter`, listing the known ones), types are strict (no "0.5" for a number, no
`true` for an integer), and `param` is the path to the value, e.g. `params.temperature` or
`messages[2].role`.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, ValidationInfo
from pydantic_core import ErrorDetails

from app.errors import InvalidRequest

Model = TypeVar("Model", bound=BaseModel)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def within_message_limit(text: str, info: ValidationInfo) -> str:
    """The service's `max_message_chars`, given in the validation context."""
    limit = (info.context or {}).get("max_message_chars")
    if limit is not None and len(text) > limit:
        raise ValueError(f"must be at most {limit} characters, got {len(text)}")
    return text


MessageText = Annotated[str, AfterValidator(within_message_limit)]


def validate(model: type[Model], data: Any, context: dict[str, Any] | None = None) -> Model:
    """`data` (already decoded) as `model`, or InvalidRequest."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise invalid_request(exc.errors(include_url=False)[0], model) from None


def validate_json(model: type[Model], raw: bytes | str,
                  context: dict[str, Any] | None = None) -> Model:
    """Raw JSON as `model`, or InvalidRequest ("not valid JSON" included)."""
    try:
        return model.model_validate_json(raw, context=context)
    except ValidationError as exc:
        raise invalid_request(exc.errors(include_url=False)[0], model) from None


def invalid_request(error: ErrorDetails, model: type[BaseModel] | None = None) -> InvalidRequest:
    """One pydantic error as the contract's error; `model` names the known fields."""
    kind, loc = error["type"], tuple(error["loc"])
    param = dotted(loc) or None
    if kind == "json_invalid":
        return InvalidRequest(f"body is not valid JSON: {error.get('ctx', {}).get('error', '')}")
    if kind in ("model_type", "dict_type") and not loc:
        return InvalidRequest("body must be a JSON object")
    if kind == "extra_forbidden":
        known = known_fields(model, loc[:-1]) if model is not None else []
        hint = f"; known: {', '.join(known)}" if known else ""
        return InvalidRequest(f"unknown parameter '{param}'{hint}", param=param,
                              code="unknown_parameter")
    if kind == "missing":
        return InvalidRequest(f"'{param}' is required", param=param)
    message = str(error["msg"]).removeprefix("Value error, ")
    if isinstance(error.get("input"), (str, int, float, bool)):
        message += f", got {_shown(error['input'])}"
    return InvalidRequest(f"'{param}': {message}" if param else message, param=param)


def dotted(loc: tuple[int | str, ...]) -> str:
    """('messages', 2, 'role') -> 'messages[2].role'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def by_type(models: dict[str, type[Model]], default: str | None = None) -> Any:
    """A validator for a union told apart by its `type` key (`default` when absent) that
    names the value itself in an error, with the inner field in the message: pydantic's own
    tagged unions put the tag in the path (`text.format.json_schema.schema`)."""

    def validated(value: Any, info: ValidationInfo) -> Any:
        kind = value.get("type", default) if isinstance(value, dict) else None
        if kind not in models:
            raise ValueError(f"must be an object whose 'type' is one of {', '.join(models)}")
        try:
            return models[kind].model_validate(value, context=info.context)
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            where = dotted(tuple(error["loc"]))
            if error["type"] == "extra_forbidden":
                raise ValueError(f"unknown parameter '{where}'") from None
            message = str(error["msg"]).removeprefix("Value error, ")
            raise ValueError(f"'{where}': {message}" if where else message) from None

    return validated


def known_fields(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Field names of the (nested) model found at `loc`, for a helpful unknown-key message."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            current = _item_type(current)
        elif isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            current = _unwrap(current.model_fields[part].annotation)
        else:
            return []
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [name for name, field in current.model_fields.items() if not field.exclude]
    return []


def _unwrap(annotation: Any) -> Any:
    """The model inside `X | None`, `Annotated[X, ...]`, `list[X]` stays a list."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(members[0]) if len(members) == 1 else None
    return annotation


def _item_type(annotation: Any) -> Any:
    args = typing.get_args(annotation)
    return _unwrap(args[0]) if args else None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
