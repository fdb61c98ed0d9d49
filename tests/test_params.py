"""The `params` object of sessions and messages (app/params.py)."""

from __future__ import annotations

import pytest

from app.engine.base import GenerationParams
from app.errors import InvalidRequest
from app.params import ReplyParams, merge_params, requested_max_tokens
from app.validation import validate


def test_valid_params_pass_and_stop_becomes_a_list() -> None:
    checked = validate(ReplyParams, {"temperature": 0, "max_tokens": 5, "stop": "\n", "seed": 1})
    assert checked.stored() == {"temperature": 0.0, "max_tokens": 5, "stop": ["\n"], "seed": 1}


@pytest.mark.parametrize(("raw", "param"), [
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"temperature": "0.5"}, "temperature"),  # strict: a number, not a numeric string
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 1.5}, "max_tokens"),
    ({"max_tokens": True}, "max_tokens"),
    ({"top_p": 0}, "top_p"),
    ({"stop": [1]}, "stop[0]"),
    ({"stop": [""]}, "stop[0]"),
    ({"stop": ["x"] * 9}, "stop"),
    ({"presence_penalty": 3}, "presence_penalty"),
    ({"ignore_eos": 1}, "ignore_eos"),
    ({"bogus": 1}, "bogus"),
])
def test_invalid_params_name_the_parameter(raw: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        validate(ReplyParams, raw)
    assert info.value.param == param


def test_params_must_be_an_object() -> None:
    with pytest.raises(InvalidRequest, match="JSON object"):
        validate(ReplyParams, [1])


def test_message_params_override_session_params() -> None:
    session, message = {"temperature": 0.2, "max_tokens": 9, "stop": ["a"]}, {"temperature": 0.9}
    merged = merge_params(GenerationParams(), session, message)
    assert (merged.temperature, merged.stop) == (0.9, ("a",))
    assert requested_max_tokens(session, message) == 9
    assert requested_max_tokens(session, {"max_tokens": 3}) == 3
    assert requested_max_tokens({}, {}) is None


def test_vllm_sampling_fields_are_session_params_too() -> None:
    checked = validate(ReplyParams, {"min_p": 0.05, "repetition_penalty": 1.1,
                                     "logit_bias": {"3": -100}, "stop_token_ids": [7],
                                     "min_tokens": 2, "bad_words": ["x"],
                                     "include_stop_str_in_output": True})
    merged = merge_params(GenerationParams(), checked.stored())
    assert (merged.min_p, merged.repetition_penalty, merged.logit_bias, merged.stop_token_ids,
            merged.min_tokens, merged.bad_words, merged.include_stop_str_in_output) == (
        0.05, 1.1, ((3, -100.0),), (7,), 2, ("x",), True)


@pytest.mark.parametrize(("raw", "param"), [
    ({"min_p": -0.1}, "min_p"),
    ({"repetition_penalty": -1}, "repetition_penalty"),
    ({"logit_bias": {"-1": 1}}, "logit_bias"),
    ({"stop_token_ids": ["1"]}, "stop_token_ids[0]"),
    ({"min_tokens": 1.0}, "min_tokens"),
    ({"bad_words": ["x" * 300]}, "bad_words[0]"),
    ({"bad_words": ["x"] * 129}, "bad_words"),
])
def test_invalid_vllm_sampling_params_name_the_parameter(raw: dict[str, object],
                                                         param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        validate(ReplyParams, raw)
    assert info.value.param == param
