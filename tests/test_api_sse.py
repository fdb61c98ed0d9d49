"""The SSE wire format both ways (app/api/http/sse.py), and the heartbeat of an idle stream."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from app.api.http import sse
from app.api.http.sse import EventParser, event_frame, frame, parse_last_event_id
from app.main import create_app
from app.settings import Settings
from app.streams import Event
from tests.fakes import ScriptedEngine


def test_frame_has_event_id_and_data_lines() -> None:
    assert frame(b'{"text":"a"}', "token", 3) == b'event: token\nid: 3\ndata: {"text":"a"}\n\n'
    assert frame(b"[DONE]") == b"data: [DONE]\n\n"


def test_newlines_in_data_become_separate_data_lines() -> None:
    assert frame(b"a\nb") == b"data: a\ndata: b\n\n"


def test_a_reply_event_is_framed_with_its_seq_as_id() -> None:
    event = Event.of(5, "token", {"text": "é\n", "n": 1})
    assert event_frame(event) == 'event: token\nid: 5\ndata: {"text":"é\\n","n":1}\n\n'.encode()


def test_parser_reads_back_what_frame_writes_across_any_split() -> None:
    wire = (frame(b'{"a":1}', "start", 0) + sse.PING + frame(b"x\ny", None, 7)
            + frame(b"[DONE]"))
    for cut in range(len(wire) + 1):
        parser = EventParser()
        events = [*parser.feed(wire[:cut]), *parser.feed(wire[cut:])]
        assert [(e.event, e.id, e.data) for e in events] == [
            ("start", "0", '{"a":1}'), ("message", "7", "x\ny"), ("message", None, "[DONE]")]
        assert parser.comments == 1


def test_parser_accepts_crlf_split_between_chunks() -> None:
    parser = EventParser()
    events = [*parser.feed(b"data: 1\r"), *parser.feed(b"\n\r\n")]
    assert [e.data for e in events] == ["1"]


@pytest.mark.parametrize(("header", "query", "expected"), [
    (None, None, -1), ("7", None, 7), (None, "4", 4), ("7", "4", 7), ("junk", "2", 2),
    ("-1", None, -1), (" 12 ", None, 12), ("-5", None, -1),
])
def test_last_event_id(header: str | None, query: str | None, expected: int) -> None:
    assert parse_last_event_id(header, query) == expected


def test_an_idle_stream_sends_ping_comments(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the engine is silent, the stream sends `: ping` so proxies keep it open; the
    events around the pings are intact."""
    monkeypatch.setattr(sse, "PING_INTERVAL_S", 0.02)
    monkeypatch.setattr("app.api.sessions.sessions.PING_INTERVAL_S", 0.02)
    engine = ScriptedEngine(tokens=["a", "b", "c"], delay_s=0.15)
    with TestClient(create_app(Settings(), engine)) as client:
        sid = client.post("/v1/sessions").json()["id"]
        response = client.post(f"/v1/sessions/{sid}/messages", json={"content": "x"},
                               headers={"Accept": "text/event-stream"})
    parser = EventParser()
    events = list(parser.feed(response.content))
    assert parser.comments >= 3
    assert [e.event for e in events] == ["start", "prefill", "token", "token", "token", "done"]
