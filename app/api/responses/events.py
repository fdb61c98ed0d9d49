"""A response's typed stream events (OpenAI's Responses API), read off its chat completion's
chunks, and the response object they build.

A response streamed, fetched whole, run in the background or resumed gives the same output:
each is this builder fed the same chunks (`feed`), ended once (`close`). Every event carries
its `sequence_number`, counting from 0 at `response.created`; `starting_after` resumes after
one. With a reasoning parser, the reasoning is one `reasoning` item (`reasoning_text`), kept out
of a chained response's prompt; text is one `message` item with one `output_text` part; each
tool call is a `function_call` item; items are closed in output order when the reply ends."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from app.api.openai.tools import NamedToolChoice
from app.api.responses.schemas import Messages, ResponsesRequest, add_call
from app.ids import new_id

Event = dict[str, Any]
TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed",
                      "response.cancelled"})


def new_response_id() -> str:
    return new_id("resp_")


def response_error(code: str, message: str) -> dict[str, str]:
    """A response's `error`: what failed it (the chat stream's error chunk, a dead replica)."""
    return {"code": code, "message": message}


@dataclass
class _Item:
    index: int  # in `output`
    body: dict[str, Any]
    parts: list[str] = field(default_factory=list)  # its text, or its arguments


class ResponseBuilder:
    def __init__(self, response_id: str, req: ResponsesRequest, model: str,
                 tool_choice: str | NamedToolChoice) -> None:
        choice = tool_choice if isinstance(tool_choice, str) else \
            {"type": "function", "name": tool_choice.function.name}
        text_format = req.text.format.model_dump(by_alias=True, exclude_none=True) \
            if req.text is not None and req.text.format is not None else {"type": "text"}
        self.response: dict[str, Any] = {
            "id": response_id, "object": "response", "created_at": int(time.time()),
            "status": "queued" if req.background else "in_progress", "background": req.background,
            "model": model, "output": [], "error": None, "incomplete_details": None,
            "instructions": req.instructions, "metadata": req.metadata or {},
            "previous_response_id": req.previous_response_id, "store": req.store,
            "conversation": {"id": req.conversation} if req.conversation else None,
            "parallel_tool_calls": req.parallel_tool_calls is not False,
            "temperature": req.temperature, "top_p": req.top_p, "tool_choice": choice,
            "tools": [t.model_dump(exclude_none=True) for t in req.tools or []],
            "max_output_tokens": req.max_output_tokens, "text": {"format": text_format},
            "truncation": "disabled", "user": req.user, "usage": None, "completed_at": None}
        self._seq = 0
        self._items: list[_Item] = []
        self._message: _Item | None = None
        self._reasoning: _Item | None = None
        self._calls: dict[int, _Item] = {}  # by the chat chunk's tool call index
        self._finish: str | None = None

    def _event(self, type_: str, **fields: Any) -> Event:
        event = {"type": type_, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def opening(self) -> list[Event]:
        events = [self._event("response.created", response=self.snapshot())]
        if self.response["status"] == "queued":
            events.append(self._event("response.queued", response=self.snapshot()))
        self.response["status"] = "in_progress"
        return [*events, self._event("response.in_progress", response=self.snapshot())]

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        """The events one chat completion chunk makes."""
        if "error" in chunk:
            self.response["error"] = response_error(chunk["error"]["code"],
                                                    chunk["error"]["message"])
            return []
        if chunk.get("usage"):
            self.response["usage"] = _usage(chunk["usage"])
        events: list[Event] = []
        for choice in chunk.get("choices", ()):
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                events += self._thought(delta["reasoning_content"])
            if delta.get("content"):
                events += self._text(delta["content"])
            for call in delta.get("tool_calls") or ():
                events += self._call(call)
            self._finish = choice.get("finish_reason") or self._finish
        return events

    def _text(self, text: str) -> list[Event]:
        events = []
        if self._message is None:
            item = self._message = self._open({
                "id": new_id("msg_"), "type": "message", "status": "in_progress",
                "role": "assistant", "content": []})
            events = [self._added(item), self._event(
                "response.content_part.added", item_id=item.body["id"], output_index=item.index,
                content_index=0, part=_text_part(""))]
        self._message.parts.append(text)
        return [*events, self._event("response.output_text.delta", item_id=self._message.body["id"],
                                     output_index=self._message.index, content_index=0,
                                     delta=text, logprobs=[])]

    def _thought(self, text: str) -> list[Event]:
        events = []
        if self._reasoning is None:
            self._reasoning = self._open({"id": new_id("rs_"), "type": "reasoning",
                                          "status": "in_progress", "summary": [], "content": []})
            events.append(self._added(self._reasoning))
        self._reasoning.parts.append(text)
        return [*events, self._event("response.reasoning_text.delta",
                                     item_id=self._reasoning.body["id"],
                                     output_index=self._reasoning.index, content_index=0,
                                     delta=text)]

    def _call(self, call: dict[str, Any]) -> list[Event]:
        events = []
        item = self._calls.get(call["index"])
        if item is None:
            item = self._calls[call["index"]] = self._open({
                "id": new_id("fc_"), "type": "function_call",
                "status": "in_progress", "call_id": call["id"],
                "name": call["function"]["name"], "arguments": ""})
            events.append(self._added(item))
        if call["function"].get("arguments"):
            item.parts.append(call["function"]["arguments"])
            events.append(self._event("response.function_call_arguments.delta",
                                      item_id=item.body["id"], output_index=item.index,
                                      delta=call["function"]["arguments"]))
        return events

    def _open(self, body: dict[str, Any]) -> _Item:
        item = _Item(len(self._items), body)
        self._items.append(item)
        return item

    def _added(self, item: _Item) -> Event:
        return self._event("response.output_item.added", output_index=item.index,
                           item=dict(item.body))

    def close(self, *, cancelled: bool = False) -> list[Event]:
        """The events that end the response: its items done, then its terminal event."""
        status = "cancelled" if cancelled else "failed" if self.response["error"] else \
            "incomplete" if self._finish == "length" else "completed"
        item_status = "completed" if status == "completed" else "incomplete"
        events = []
        for item in self._items:
            item.body["status"] = item_status
            text = "".join(item.parts)
            if item is self._message:
                events += [
                    self._event("response.output_text.done", item_id=item.body["id"],
                                output_index=item.index, content_index=0, text=text, logprobs=[]),
                    self._event("response.content_part.done", item_id=item.body["id"],
                                output_index=item.index, content_index=0,
                                part=_text_part(text))]
                item.body["content"] = [_text_part(text)]
            elif item is self._reasoning:
                events.append(self._event("response.reasoning_text.done",
                                          item_id=item.body["id"], output_index=item.index,
                                          content_index=0, text=text))
                item.body["content"] = [{"type": "reasoning_text", "text": text}]
            else:
                item.body["arguments"] = text
                events.append(self._event("response.function_call_arguments.done",
                                          item_id=item.body["id"], output_index=item.index,
                                          name=item.body["name"], arguments=text))
            events.append(self._event("response.output_item.done", output_index=item.index,
                                      item=dict(item.body)))
        self.response.update(status=status, output=[item.body for item in self._items])
        if status == "incomplete":
            self.response["incomplete_details"] = {"reason": "max_output_tokens"}
        if status == "completed":
            self.response["completed_at"] = int(time.time())
        return [*events, self._event(f"response.{status}", response=self.snapshot())]

    def snapshot(self) -> dict[str, Any]:
        return {**self.response, "output": [dict(item.body) for item in self._items]}

    def conversation(self) -> Messages:
        """The reply as chat messages: what a response chained to this one sees of it."""
        messages: Messages = []
        for item in self._items:
            if item is self._reasoning:
                continue  # as the chat templates want: a turn's reasoning is not replayed
            if item is self._message:
                messages.append({"role": "assistant", "content": "".join(item.parts)})
            else:
                add_call(messages, {"id": item.body["call_id"], "type": "function", "function": {
                    "name": item.body["name"], "arguments": "".join(item.parts)}})
        return messages


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _usage(usage: dict[str, Any]) -> dict[str, Any]:
    details = usage.get("prompt_tokens_details") or {}
    return {"input_tokens": usage["prompt_tokens"],
            "input_tokens_details": {"cached_tokens": details.get("cached_tokens", 0)},
            "output_tokens": usage["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage["total_tokens"]}
