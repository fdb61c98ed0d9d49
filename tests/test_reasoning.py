"""A reply split into reasoning and answer by vLLM's reasoning parsers (app/reasoning.py,
app/engine/reasoning_parsers.py): the same split streamed, however the steps cut the text, as
read whole; a prompt that closed the reasoning; parsers that do not exist or fit."""

from __future__ import annotations

import re
from typing import Any

import pytest

from app.engine.reasoning_parsers import new_parser
from app.errors import ConfigError
from app.reasoning import ReasoningSplit
from tests.fakes import THINK_TOKENS, ScriptedEngine, token_ids

TEXTS = ["<think>plan it</think>The answer.", "<think>\nplan\n</think>\n\nanswer",
         "plan</think>ans", "<think>cut short", "no think at all"]


def steps(text: str) -> list[str]:
    """The text as a model emits it: a think token at once, any other token a char."""
    parts = re.split("(</?think>)", text)
    return [t for i, part in enumerate(parts) for t in ([part] if i % 2 else list(part))]


def streamed(split: ReasoningSplit, pieces: list[str]) -> tuple[str | None, str | None]:
    reasoning = answer = ""
    for k, piece in enumerate(pieces):
        thought, text = split.feed(piece, token_ids(piece), last=k == len(pieces) - 1)
        reasoning, answer = reasoning + thought, answer + text
    return reasoning or None, answer or None


def new_split(name: str, prompt: list[int] | None = None) -> ReasoningSplit:
    return ReasoningSplit(ScriptedEngine().reasoning_parser(name), prompt or [1, 2, 3])


@pytest.mark.parametrize("text", TEXTS)
def test_qwen3_splits_the_same_wherever_the_steps_cut_the_text(text: str) -> None:
    whole = new_split("qwen3").whole(text)
    tokens = steps(text)
    for i in range(1, len(tokens)):
        for j in range(i, len(tokens) + 1):
            pieces = [p for p in ("".join(tokens[:i]), "".join(tokens[i:j]), "".join(tokens[j:]))
                      if p]
            assert streamed(new_split("qwen3"), pieces) == whole, pieces


@pytest.mark.parametrize("text", TEXTS)
def test_deepseek_r1_one_token_a_step_splits_as_read_whole(text: str) -> None:
    # vLLM's deepseek_r1 keeps the "<think>" text in the reasoning of a step that holds it and
    # more: on the CPU (no speculative decoding) a step is one token.
    assert streamed(new_split("deepseek_r1"), steps(text)) == new_split("deepseek_r1").whole(text)


def test_the_split_of_a_plain_reply() -> None:
    assert new_split("qwen3").whole("<think>plan it</think>The answer.") == \
        ("plan it", "The answer.")
    assert new_split("deepseek_r1").whole("<think>cut short") == ("cut short", None)
    assert new_split("deepseek_r1").whole("no think at all") == ("no think at all", None)


def test_a_prompt_that_closed_the_reasoning_leaves_all_of_the_reply_answer() -> None:
    closed = [1, THINK_TOKENS["<think>"], 5, THINK_TOKENS["</think>"], 2]
    split = new_split("deepseek_r1", closed)
    assert split.feed("plan", token_ids("plan")) == ("", "plan")
    assert new_split("deepseek_r1", closed).whole("plan") == (None, "plan")


class _NoThinkTokenizer:
    def get_vocab(self) -> dict[str, int]:
        return {"a": 0}


@pytest.mark.parametrize(("name", "tokenizer", "words"), [
    ("nope", _NoThinkTokenizer(), "unknown parser 'nope'; vLLM's are .*deepseek_r1.*qwen3"),
    ("deepseek_r1", _NoThinkTokenizer(), "'deepseek_r1' does not fit this model's tokenizer"),
])
def test_a_parser_that_does_not_exist_or_fit_is_a_config_error(name: str, tokenizer: Any,
                                                               words: str) -> None:
    with pytest.raises(ConfigError, match="STREAMCHAT_REASONING_PARSER: " + words):
        new_parser(name, tokenizer)
