"""A reasoning model's reply, split: its reasoning (`<think>...</think>` and the like) apart
from its answer, by vLLM's reasoning parser for the model's format
(`STREAMCHAT_REASONING_PARSER`, app/engine/reasoning_parsers.py).

Streamed, as vLLM's server streams it (`vllm/parser/abstract_parser.py`, `parse_delta`): each
step goes through the parser's `extract_reasoning_streaming` (text and token ids: a think token
is found by its id) until the parser says the reasoning ended; from then on the text is all
answer and passes straight through. Whole, its `extract_reasoning` reads the text at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.engine.reasoning_parsers import vllm_request


class ReasoningSplit:
    """One reply's (one choice's) text through one parser instance (parsers keep a reply's
    state). `prompt_ids`: a prompt whose template already closed the reasoning (or left it
    open) tells the parser where the reply starts, as vLLM does."""

    def __init__(self, parser: Any, prompt_ids: Sequence[int] | None = None) -> None:
        self._parser = parser
        self._engine_based = bool(getattr(parser, "engine_based_streaming", False))
        self._text = ""
        self._ids: list[int] = []
        self.ended = False  # the reasoning is over: the rest is answer
        if prompt_ids:
            if parser.is_reasoning_end(prompt_ids):
                self.ended = True
            else:
                parser.adjust_initial_state_from_prompt(prompt_ids)

    def feed(self, text: str, token_ids: Sequence[int], last: bool = False) -> tuple[str, str]:
        """One step's (reasoning, answer) pieces; `last`: the reply's last step (a parser may
        hold text back until then)."""
        if self.ended:
            return "", text
        parser = self._parser
        # The whole text and ids so far, as vLLM's server keeps them (one copy per step, only
        # while the reply reasons).
        previous, previous_ids = self._text, self._ids
        self._text, self._ids = previous + text, [*previous_ids, *token_ids]
        delta = parser.extract_reasoning_streaming(previous, self._text, text, previous_ids,
                                                   self._ids, token_ids)
        reasoning = (delta.reasoning or "") if delta is not None else ""
        answer = (delta.content or "") if delta is not None else ""
        if self._engine_based:
            self.ended = parser.has_engine_confirmed_reasoning_end()
        else:
            self.ended = parser.is_reasoning_end_streaming(self._ids, token_ids)
        if self._engine_based and (self.ended or last):
            # An engine-based parser holds back text that might start a marker.
            flushed = parser.finish_streaming()
            if flushed is not None:
                reasoning += "" if self.ended else flushed.reasoning or ""
                answer += flushed.content or ""
        return reasoning, answer

    def whole(self, text: str) -> tuple[str | None, str | None]:
        """A whole reply's (reasoning, answer), each None when there is none."""
        if self.ended:
            return None, text or None
        reasoning, answer = self._parser.extract_reasoning(text, vllm_request())
        return reasoning or None, answer
