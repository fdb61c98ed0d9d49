"""A response's typed events and its response object (app/api/responses/events.py), read off
chat completion chunks: the opening, text, reasoning and function call items, an error, how it
ends (completed, incomplete, failed, cancelled), and numbering that never repeats."""

from __future__ import annotations

from typing import Any

from app.api.http.errors import error_body
from app.api.responses.events import TERMINAL, Event, ResponseBuilder
from app.api.responses.schemas import ResponsesRequest


def builder(**request: Any) -> ResponseBuilder:
    req = ResponsesRequest.model_validate({"model": "m", "input": "hi", **request})
    return ResponseBuilder("resp_1", req, "m", "auto")


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None,
          usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """A chat completion chunk, as app/api/openai/format.py makes them."""
    out: dict[str, Any] = {"id": "resp_1", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}]}
    if usage is not None:
        out.update(choices=[], usage=usage)
    return out


def types(events: list[Event]) -> list[str]:
    return [e["type"] for e in events]


def run(b: ResponseBuilder, *chunks: dict[str, Any], cancelled: bool = False) -> list[Event]:
    events = b.opening()
    for c in chunks:
        events += b.feed(c)
    return events + b.close(cancelled=cancelled)


def test_the_opening_events() -> None:
    assert [(e["type"], e["response"]["status"]) for e in builder().opening()] == [
        ("response.created", "in_progress"), ("response.in_progress", "in_progress")]
    background = builder(background=True).opening()
    assert [(e["type"], e["response"]["status"]) for e in background] == [
        ("response.created", "queued"), ("response.queued", "queued"),
        ("response.in_progress", "in_progress")]
    assert [e["sequence_number"] for e in background] == [0, 1, 2]
    created = background[0]["response"]
    assert (created["id"], created["object"], created["model"], created["output"]) == (
        "resp_1", "response", "m", [])


def test_text_deltas_make_one_message_and_sequence_numbers_only_grow() -> None:
    b = builder()
    events = run(b, chunk({"role": "assistant", "content": "Hel"}), chunk({"content": "lo"}),
                 chunk({}, "stop"))
    assert types(events) == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    item_id = events[2]["item"]["id"]
    assert [(e["delta"], e["item_id"], e["output_index"]) for e in deltas] == [
        ("Hel", item_id, 0), ("lo", item_id, 0)]
    done = events[-1]["response"]
    assert (done["status"], done["completed_at"] is not None, done["error"]) == (
        "completed", True, None)
    assert done["output"] == [{"id": item_id, "type": "message", "status": "completed",
                               "role": "assistant", "content": [{
                                   "type": "output_text", "text": "Hello", "annotations": [],
                                   "logprobs": []}]}]
    assert b.conversation() == [{"role": "assistant", "content": "Hello"}]


def test_usage_in_the_responses_names() -> None:
    b = builder()
    events = run(b, chunk({"content": "a"}, "stop"), chunk(usage={
        "prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10,
        "prompt_tokens_details": {"cached_tokens": 8}}))
    assert events[-1]["response"]["usage"] == {
        "input_tokens": 9, "input_tokens_details": {"cached_tokens": 8}, "output_tokens": 1,
        "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 10}


def call(index: int, arguments: str, name: str | None = None) -> dict[str, Any]:
    function: dict[str, Any] = {"arguments": arguments}
    head: dict[str, Any] = {}
    if name is not None:
        function["name"] = name
        head = {"id": f"call_{index}", "type": "function"}
    return {"tool_calls": [{"index": index, **head, "function": function}]}


def test_a_function_call_is_an_item_with_its_arguments() -> None:
    b = builder(tools=[{"type": "function", "name": "get", "parameters": {"type": "object"}}])
    events = run(b, chunk(call(0, "", "get")), chunk(call(0, '{"a":')), chunk(call(0, " 1}")),
                 chunk({}, "tool_calls"))
    assert types(events)[2:] == [
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed"]
    added = events[2]["item"]
    assert (added["type"], added["call_id"], added["name"], added["arguments"]) == (
        "function_call", "call_0", "get", "")
    assert events[-3]["arguments"] == '{"a": 1}' and events[-3]["name"] == "get"
    [item] = events[-1]["response"]["output"]
    assert (item["arguments"], item["status"]) == ('{"a": 1}', "completed")
    assert b.conversation() == [{"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_0", "type": "function",
        "function": {"name": "get", "arguments": '{"a": 1}'}}]}]


def test_reasoning_is_its_own_item_and_not_in_the_conversation() -> None:
    b = builder()
    events = run(b, chunk({"role": "assistant", "reasoning_content": "plan"}),
                 chunk({"reasoning_content": " more"}), chunk({"content": "answer"}, "stop"))
    assert types(events)[2:6] == [
        "response.output_item.added", "response.reasoning_text.delta",
        "response.reasoning_text.delta", "response.output_item.added"]
    done = [e for e in events if e["type"] == "response.reasoning_text.done"]
    assert [(e["text"], e["output_index"]) for e in done] == [("plan more", 0)]
    output = events[-1]["response"]["output"]
    assert [item["type"] for item in output] == ["reasoning", "message"]
    assert output[0]["content"] == [{"type": "reasoning_text", "text": "plan more"}]
    assert b.conversation() == [{"role": "assistant", "content": "answer"}]


def test_an_error_chunk_fails_the_response() -> None:
    b = builder()
    events = run(b, chunk({"content": "par"}),
                 error_body("the engine died", "server_error", "engine_error"))
    assert types(events)[-2:] == ["response.output_item.done", "response.failed"]
    failed = events[-1]["response"]
    assert (failed["status"], failed["completed_at"]) == ("failed", None)
    assert failed["error"] == {"code": "engine_error", "message": "the engine died"}
    assert failed["output"][0]["status"] == "incomplete"
    assert failed["output"][0]["content"][0]["text"] == "par"


def test_cancelled_and_cut_short_are_not_completed() -> None:
    cancelled = run(builder(), chunk({"content": "par"}), cancelled=True)[-1]
    assert cancelled["type"] == "response.cancelled"
    assert (cancelled["response"]["status"], cancelled["response"]["completed_at"]) == (
        "cancelled", None)
    assert cancelled["response"]["output"][0]["status"] == "incomplete"
    cut = run(builder(), chunk({"content": "par"}, "length"))[-1]
    assert cut["type"] == "response.incomplete"
    assert cut["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert {"response.completed", "response.cancelled", "response.incomplete",
            "response.failed"} == TERMINAL


def test_a_snapshot_is_the_response_then_not_a_view_of_it() -> None:
    b = builder(metadata={"k": "v"}, instructions="be brief")
    opening = b.opening()
    b.feed(chunk({"content": "Hel"}))
    during = b.snapshot()
    assert (during["status"], during["metadata"], during["instructions"]) == (
        "in_progress", {"k": "v"}, "be brief")
    assert during["output"][0]["status"] == "in_progress"
    b.feed(chunk({"content": "lo"}, "stop"))
    b.close()
    # What earlier events carried stays as it was sent.
    assert opening[0]["response"]["status"] == "in_progress"
    assert opening[0]["response"]["output"] == []
    assert during["output"][0]["status"] == "in_progress"
    assert b.snapshot()["status"] == "completed"
    assert b.snapshot()["output"][0]["content"][0]["text"] == "Hello"
