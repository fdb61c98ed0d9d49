from __future__ import annotations

import pytest

from app.engine.base import GenerationParams
from app.errors import InvalidRequest
from app.params import check_params, merge_params


def test_valid_params_pass_and_stop_becomes_a_tuple() -> None:
    checked = check_params({"temperature": 0, "max_tokens": 5, "stop": "\n", "seed": 1})
    assert checked == {"temperature": 0.0, "max_tokens": 5, "stop": ("\n",), "seed": 1}


@pytest.mark.parametrize(("raw", "param"), [
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 1.5}, "max_tokens"),
    ({"max_tokens": True}, "max_tokens"),
    ({"top_p": 0}, "top_p"),
    ({"stop": [1]}, "stop"),
    ({"stop": [""]}, "stop"),
    ({"presence_penalty": 3}, "presence_penalty"),
    ({"temperature": float("nan")}, "temperature"),
    ({"bogus": 1}, "params.bogus"),
])
def test_invalid_params_name_the_parameter(raw: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_params(raw)
    assert info.value.param == param


def test_params_must_be_an_object() -> None:
    with pytest.raises(InvalidRequest):
        check_params([1])


def test_message_params_override_session_params() -> None:
    merged = merge_params(GenerationParams(), {"temperature": 0.2, "max_tokens": 9},
                          {"temperature": 0.9})
    assert (merged.temperature, merged.max_tokens) == (0.9, 9)
