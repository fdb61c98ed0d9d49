"""One response's run (app/responses/run.py; its frames, app/api/responses/frames.py): stored
before its terminal event goes out (`store: true`) and never with `store: false`, a background
run's cancel ends it cancelled and stored, a streamed run's client that left takes it along; a
stored response is its key's alone; its events framed for SSE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from app.api.responses.events import TERMINAL, Event, ResponseBuilder
from app.api.responses.frames import frames, logged_frames
from app.api.responses.schemas import ResponsesRequest
from app.errors import InvalidRequest, NotFound
from app.replies.detached import logged_as
from app.responses.run import ResponseRun, whole
from app.responses.stored import KIND, stored
from app.streams.log import Event as LogEvent

CONVERSATION = [{"role": "user", "content": "hi"}]


class Records:
    """Records kept as their JSON (as a store keeps them), each `put` noted as it happens."""

    def __init__(self) -> None:
        self.kept: dict[tuple[str, str], bytes] = {}
        self.puts: list[str | None] = []  # the status of the response in each put, in order

    async def put(self, kind: str, record_id: str, record: dict[str, Any]) -> None:
        self.kept[kind, record_id] = orjson.dumps(record)
        self.puts.append(record["response"].get("status"))

    async def get(self, kind: str, record_id: str) -> dict[str, Any] | None:
        raw = self.kept.get((kind, record_id))
        return None if raw is None else orjson.loads(raw)


def run_of(records: Records, *, store: bool = True, background: bool = False,
           owner: str | None = "alice") -> ResponseRun:
    req = ResponsesRequest.model_validate({"model": "m", "input": "hi", "store": store,
                                           "background": background})
    return ResponseRun(ResponseBuilder("resp_1", req, "m", "auto"), records,  # type: ignore[arg-type]
                       owner=owner, conversation=CONVERSATION, store=store,
                       background=background)


def chunk(content: str, finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]}


async def answer(*chunks: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    for c in chunks:
        yield c


class Held:
    """A chat stream that sends `first`, then generates on with nothing more to show until it
    is stopped; `asked` is set once its reader wants more after the first chunk."""

    def __init__(self, first: dict[str, Any]) -> None:
        self.first = first
        self.asked = asyncio.Event()
        self.closed = False

    async def chunks(self) -> AsyncIterator[dict[str, Any]]:
        try:
            yield self.first
            self.asked.set()
            await asyncio.Event().wait()
            yield chunk("never")
        finally:
            self.closed = True


async def test_it_is_stored_before_its_terminal_event_goes_out() -> None:
    records = Records()
    run = run_of(records)
    seen: list[tuple[str, str | None]] = []  # each event, and what was stored as it went out
    async for event in run.events(answer(chunk("Hel"), chunk("lo", "stop"))):
        record = await records.get(KIND, "resp_1")
        seen.append((event["type"], record["response"]["status"] if record else None))
    assert seen[-1] == ("response.completed", "completed")
    assert {status for _, status in seen[:-4]} == {None}  # a streamed run: stored at its end
    record = await records.get(KIND, "resp_1")
    assert record is not None and record["owner"] == "alice"
    assert record["response"]["output"][0]["content"][0]["text"] == "Hello"
    # What a response chained to it renders: the conversation so far, then this reply.
    assert record["messages"] == [*CONVERSATION, {"role": "assistant", "content": "Hello"}]
    assert records.puts == ["completed"]


async def test_store_false_keeps_nothing() -> None:
    records = Records()
    run = run_of(records, store=False)
    events = [e async for e in run.events(answer(chunk("Hi", "stop")))]
    assert events[-1]["type"] == "response.completed"
    assert records.kept == {}
    await run.save()  # nor when asked directly
    assert records.kept == {}


async def test_a_background_run_is_stored_in_progress_then_at_its_end() -> None:
    records = Records()
    run = run_of(records, background=True)
    events = run.events(answer(chunk("Hel"), chunk("lo", "stop")))
    opening = [await anext(events) for _ in range(3)]
    assert [e["type"] for e in opening] == [
        "response.created", "response.queued", "response.in_progress"]
    first_text = await anext(events)  # the run went on: what GET sees meanwhile was stored
    assert first_text["type"] == "response.output_item.added"
    assert records.puts == ["in_progress"]
    await whole(events)
    assert records.puts == ["in_progress", "completed"]


async def test_a_background_run_cancelled_ends_cancelled_and_is_stored() -> None:
    records = Records()
    run = run_of(records, background=True)
    held = Held(chunk("partial"))
    seen: list[Event] = []

    async def drive() -> None:  # as the detached task runs it (app/replies/detached.py)
        async for event in run.events(held.chunks()):
            seen.append(event)

    task = asyncio.create_task(drive())
    await held.asked.wait()
    task.cancel()  # POST .../cancel, or a shutdown
    await task  # the run ends by itself, with its events
    assert held.closed
    assert seen[-1]["type"] == "response.cancelled"
    assert [e["type"] for e in seen].count("response.cancelled") == 1
    record = await records.get(KIND, "resp_1")
    assert record is not None and record["response"]["status"] == "cancelled"
    assert record["response"]["output"][0]["content"][0]["text"] == "partial"
    assert records.puts == ["in_progress", "cancelled"]


async def test_a_streamed_run_whose_client_left_goes_with_it() -> None:
    records = Records()
    run = run_of(records)
    held = Held(chunk("partial"))
    seen: list[Event] = []

    async def respond() -> None:  # as the HTTP response streams it
        async for event in run.events(held.chunks()):
            seen.append(event)

    task = asyncio.create_task(respond())
    await held.asked.wait()
    task.cancel()  # the server cancels a response whose client went away
    with pytest.raises(asyncio.CancelledError):
        await task
    assert held.closed  # its completion let go of (the engine aborts it)
    assert not {e["type"] for e in seen} & TERMINAL
    assert records.kept == {}  # nothing to keep: nobody will GET it


async def test_a_stored_response_is_its_keys_alone() -> None:
    records = Records()
    await records.put(KIND, "resp_1", {"response": {"id": "resp_1"}, "owner": "alice"})
    assert (await stored(records, "resp_1", "alice"))["owner"] == "alice"  # type: ignore[arg-type]
    assert (await stored(records, "resp_1", None))["owner"] == "alice"  # type: ignore[arg-type]
    for response_id, asking in (("resp_1", "bob"), ("resp_nope", "alice")):
        with pytest.raises(NotFound) as missing:
            await stored(records, response_id, asking)  # type: ignore[arg-type]
        assert (missing.value.code, missing.value.param) == ("response_not_found", "response_id")


async def test_a_previous_response_not_found_is_the_requests_error() -> None:
    records = Records()
    await records.put(KIND, "resp_1", {"response": {"id": "resp_1"}, "owner": "alice"})
    for response_id in ("resp_1", "resp_nope"):
        with pytest.raises(InvalidRequest) as missing:  # a 400, not a 404: the body is wrong
            await stored(records, response_id, "bob",  # type: ignore[arg-type]
                         param="previous_response_id")
        assert (missing.value.code, missing.value.param) == (
            "previous_response_not_found", "previous_response_id")


async def test_frames_name_each_event_and_number_it() -> None:
    events = run_of(Records(), store=False).events(answer(chunk("Hi", "stop")))
    out = [f async for f in frames(events)]
    assert out[0].startswith(b"event: response.created\nid: 0\ndata: {")
    assert out[-1].startswith(b"event: response.completed\nid: %d\ndata: " % (len(out) - 1))
    assert orjson.loads(out[-1].split(b"data: ", 1)[1])["response"]["status"] == "completed"


async def test_a_logged_run_is_framed_without_the_logs_own_events() -> None:
    created = {"type": "response.created", "sequence_number": 0}
    completed = {"type": "response.completed", "sequence_number": 1}
    logged: list[LogEvent | None] = [  # as app/replies/detached.py logs them
        LogEvent.of(0, "start", {"owner": "alice"}),
        LogEvent.of(1, logged_as(created), created),
        None,  # a heartbeat
        LogEvent.of(2, logged_as(completed), completed),
        LogEvent.of(3, "done", {})]

    async def log() -> AsyncIterator[LogEvent | None]:
        for event in logged:
            yield event

    out = [f async for f in logged_frames(log())]
    assert out == [b'event: response.created\nid: 0\ndata: '
                   b'{"type":"response.created","sequence_number":0}\n\n',
                   b": ping\n\n",
                   b'event: response.completed\nid: 1\ndata: '
                   b'{"type":"response.completed","sequence_number":1}\n\n']
