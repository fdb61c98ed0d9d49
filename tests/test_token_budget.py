"""The one rule for a reply's max_tokens against the context (app/token_budget.py)."""

from __future__ import annotations

import pytest

from app.errors import ContextTooLong
from app.token_budget import history_reserve, reply_max_tokens


def test_unset_max_tokens_takes_what_the_context_leaves_up_to_the_default() -> None:
    assert reply_max_tokens(100, 10, None, 512, prompt_param="p") == 90
    assert reply_max_tokens(1000, 10, None, 512, prompt_param="p") == 512
    assert reply_max_tokens(100, 99, None, 512, prompt_param="p") == 1


def test_requested_max_tokens_must_fit_with_the_prompt() -> None:
    assert reply_max_tokens(100, 10, 90, 512, prompt_param="p") == 90
    with pytest.raises(ContextTooLong) as info:
        reply_max_tokens(100, 10, 91, 512, prompt_param="p")
    assert info.value.param == "max_tokens" and "101 tokens" in info.value.message


@pytest.mark.parametrize("requested", [None, 5])
def test_a_prompt_that_fills_the_context_names_the_prompt(requested: int | None) -> None:
    with pytest.raises(ContextTooLong) as info:
        reply_max_tokens(100, 100, requested, 512, prompt_param="messages")
    assert info.value.param == "messages" and info.value.code == "context_length_exceeded"


def test_history_keeps_room_for_the_reply() -> None:
    assert history_reserve(1000, 300, 16) == 300
    assert history_reserve(1000, None, 16) == 16
    assert history_reserve(256, None, 512) == 128  # at most half a small context
