"""A reply read back as OpenAI tool calls, the same calls however its text is split.

A reader turns one choice's text into the pieces of its streamed deltas (`{"content"}` or
`{"tool_calls": [one call's delta]}`), and its whole text into the non-streamed message.

With `tool_choice: "required"` the reply is constrained to vLLM's schema, a JSON array of
`{"name", "parameters"}`; with a named function, to that function's parameters (the reply *is*
the arguments). Each call is streamed in OpenAI's shape: a first delta with `index`, `id`,
`type`, `function.name` and `arguments: ""`, then deltas adding `arguments` fragments. A
non-streamed response assembles the same deltas, so both give the same calls."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from app.ids import new_id

ToolCallDelta = dict[str, Any]
Piece = dict[str, Any]  # a chunk's `delta`, less its role
_DECODER = json.JSONDecoder()


def call_id() -> str:
    return new_id("call_")


def _opening(index: int, name: str) -> ToolCallDelta:
    return {"index": index, "id": call_id(), "type": "function",
            "function": {"name": name, "arguments": ""}}


def _fragment(index: int, arguments: str) -> ToolCallDelta:
    return {"index": index, "function": {"arguments": arguments}}


class Reader(Protocol):
    calls: int  # how many calls it has read

    def feed(self, text: str) -> list[Piece]: ...

    def message(self, text: str) -> dict[str, Any]: ...


class CallReader:
    """A forced reply (`required`, a named function), fed piece by piece."""

    def __init__(self, forced_name: str | None) -> None:
        self._name = forced_name  # a named function: the whole reply is its arguments
        self._text = ""
        self._at = 0  # where the next call of a `required` array starts
        self.calls = 0

    def feed(self, text: str) -> list[Piece]:
        return [{"tool_calls": [call]} for call in self._deltas(text)]

    def message(self, text: str) -> dict[str, Any]:
        return {"content": None, "tool_calls": assemble(self._deltas(text))}

    def _deltas(self, text: str) -> list[ToolCallDelta]:
        if not text:
            return []
        if self._name is not None:
            out = [] if self.calls else [_opening(0, self._name)]
            self.calls = 1
            return [*out, _fragment(0, text)]
        self._text += text
        return self._complete_calls()

    def _complete_calls(self) -> list[ToolCallDelta]:
        # A call is sent once its object is complete: a prefix of JSON never decodes as the
        # whole object, so where the text was split cannot change what is read.
        out: list[ToolCallDelta] = []
        while True:
            at = self._at
            while at < len(self._text) and self._text[at] in " \t\r\n[,":
                at += 1
            try:
                call, end = _DECODER.raw_decode(self._text, at)
            except json.JSONDecodeError:
                return out
            self._at = end
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                continue  # the schema allows nothing else; a cut reply may end oddly
            arguments = json.dumps(call.get("parameters", {}), ensure_ascii=False)
            out += [_opening(self.calls, call["name"]), _fragment(self.calls, arguments)]
            self.calls += 1


class ToolCalls:
    """The tool calls of every choice of one reply: a reader per choice, streamed or not."""

    def __init__(self, new_reader: Callable[[], Reader]) -> None:
        self._new_reader = new_reader
        self._readers: dict[int, Reader] = {}

    def feed(self, index: int, text: str) -> list[Piece]:
        if index not in self._readers:
            self._readers[index] = self._new_reader()
        return self._readers[index].feed(text)

    def message(self, index: int, text: str) -> dict[str, Any]:
        """The non-streamed message of a choice's whole text."""
        self._readers[index] = reader = self._new_reader()
        return {"role": "assistant", **reader.message(text)}

    def finish_reason(self, index: int, reason: str | None) -> str | None:
        """"tool_calls" for a choice that stopped having called; a cut one stays "length"."""
        reader = self._readers.get(index)
        return "tool_calls" if reason == "stop" and reader and reader.calls else reason


def assemble(deltas: list[ToolCallDelta]) -> list[dict[str, Any]]:
    """The calls the deltas make, as a non-streamed message's `tool_calls`."""
    calls: dict[int, dict[str, Any]] = {}
    for delta in deltas:
        if "id" in delta:
            calls[delta["index"]] = {"id": delta["id"], "type": "function",
                                     "function": {**delta["function"]}}
        else:
            calls[delta["index"]]["function"]["arguments"] += delta["function"]["arguments"]
    return [calls[index] for index in sorted(calls)]
