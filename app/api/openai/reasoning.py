"""A chat completion's reasoning, with `STREAMCHAT_REASONING_PARSER` set: as vLLM's server
gives it, the reply's reasoning in the message's `reasoning_content` (streamed: the delta's),
its answer in `content`, and only the answer read for tool calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.engine.base import Delta
from app.reasoning import ReasoningSplit

if TYPE_CHECKING:
    from app.api.http.state import Services
    from app.completions import Completion

Piece = dict[str, Any]  # a chunk's `delta`, less its role


class Reasoning:
    """The reasoning of every choice of one reply: a split per choice, streamed or not."""

    def __init__(self, new_split: Callable[[], ReasoningSplit]) -> None:
        self._new_split = new_split
        self._splits: dict[int, ReasoningSplit] = {}

    def pieces(self, delta: Delta, answer: Callable[[str], list[Piece]]) -> list[Piece]:
        """A streamed delta's pieces: its reasoning, then what `answer` makes of the rest."""
        split = self._splits.get(delta.index)
        if split is None:
            split = self._splits[delta.index] = self._new_split()
        reasoning, text = split.feed(delta.text, delta.token_ids, delta.finish_reason is not None)
        shown = answer(text)
        return [{"reasoning_content": reasoning}, *shown] if reasoning else shown

    def split(self, text: str) -> tuple[str | None, str | None]:
        """A whole choice's (reasoning, answer)."""
        return self._new_split().whole(text)


def reasoning_of(svc: Services, completion: Completion) -> Reasoning | None:
    """The reply's reasoning apart, when a reasoning parser is set (a new parser per choice)."""
    name = svc.settings.reasoning_parser
    if name is None:
        return None
    return Reasoning(lambda: ReasoningSplit(svc.engine.reasoning_parser(name),
                                            completion.prompt_ids))
