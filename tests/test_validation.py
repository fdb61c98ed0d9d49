"""Declared models and the one rule mapping their errors to the contract's (app/validation.py)."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import Field

from app.errors import InvalidRequest
from app.validation import StrictModel, validate, validate_json


class Inner(StrictModel):
    level: Annotated[int, Field(ge=0)] = 0
    name: str | None = None


class Outer(StrictModel):
    title: str
    items: list[Inner] = []
    inner: Inner | None = None


@pytest.mark.parametrize(("raw", "param", "code", "needle"), [
    (b"{", None, "invalid_request", "not valid JSON"),
    (b"[1]", None, "invalid_request", "JSON object"),
    (b"{}", "title", "invalid_request", "'title' is required"),
    (b'{"title": 1}', "title", "invalid_request", "got 1"),
    (b'{"title": "t", "colour": 1}', "colour", "unknown_parameter", "known: title, items, inner"),
    (b'{"title": "t", "inner": {"x": 1}}', "inner.x", "unknown_parameter", "known: level, name"),
    (b'{"title": "t", "items": [{}, {"level": -1}]}', "items[1].level", "invalid_request",
     "greater than or equal to 0"),
    (b'{"title": "t", "items": [{"y": 0}]}', "items[0].y", "unknown_parameter", "known: level"),
])
def test_errors_name_the_path_to_the_value(raw: bytes, param: str | None, code: str,
                                           needle: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        validate_json(Outer, raw)
    assert (info.value.param, info.value.code) == (param, code)
    assert needle in info.value.message
    assert "pydantic" not in info.value.message


def test_strict_types_and_frozen_models() -> None:
    with pytest.raises(InvalidRequest):
        validate(Inner, {"level": "3"})
    inner = validate(Inner, {"level": 3})
    with pytest.raises(Exception, match="frozen"):
        inner.level = 4  # type: ignore[misc]
