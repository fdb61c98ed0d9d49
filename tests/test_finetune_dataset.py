"""app/finetune/dataset.py: every line of a fine-tuning file checked, a bad one named by its
line number and what is wrong with it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.errors import InvalidRequest
from app.finetune.dataset import examples


def line(*roles: str, **extra: Any) -> str:
    return json.dumps({"messages": [{"role": r, "content": f"{r} text"} for r in roles],
                       **extra})


GOOD = line("user", "assistant")


def test_good_examples_are_read_back_blank_lines_skipped() -> None:
    raw = "\n".join([GOOD, "", line("system", "user", "assistant", "user", "assistant"), ""])
    found = examples(raw.encode())
    assert [[m["role"] for m in ex] for ex in found] == [
        ["user", "assistant"], ["system", "user", "assistant", "user", "assistant"]]
    assert found[0][1] == {"role": "assistant", "content": "assistant text"}


@pytest.mark.parametrize(("bad", "says"), [
    ('{"messages": [', "is not valid JSON"),
    ("[1, 2]", 'must be a JSON object with "messages"'),
    ('{"prompt": "hi", "completion": "there"}', 'has no "messages"'),
    ('{"messages": []}', "must be a non-empty list"),
    (line("assistant", "user"), "roles are in the wrong order: messages[0] is 'assistant'"),
    (line("user", "user", "assistant"), "messages[1] is 'user' where 'assistant'"),
    (line("user", "system", "assistant"), "messages[1] is 'system'"),
    (line("user", "assistant", "user"), "the last message must be the assistant's"),
    (line("system"), "the last message must be the assistant's"),
    (line("user", "robot"), "messages[1].role must be one of system, user, assistant, got 'robot'"),
    ('{"messages": [{"role": "user", "content": " "}, {"role": "assistant", "content": "x"}]}',
     "messages[0].content is empty"),
    ('{"messages": [{"role": "user", "content": 1}, {"role": "assistant", "content": "x"}]}',
     "messages[0].content must be a string"),
    ('{"messages": ["hi"]}', "messages[0] must be an object"),
])
def test_a_bad_line_is_named_with_what_is_wrong(bad: str, says: str) -> None:
    raw = "\n".join([GOOD, GOOD, bad, GOOD]).encode()
    with pytest.raises(InvalidRequest) as caught:
        examples(raw)
    assert caught.value.message.startswith("line 3: ")
    assert says in caught.value.message
    assert caught.value.param == "file" and caught.value.code == "invalid_file"


@pytest.mark.parametrize("raw", [b"", b"\n\n  \n"])
def test_an_empty_file_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidRequest, match="the file has no examples"):
        examples(raw)
