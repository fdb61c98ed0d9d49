from __future__ import annotations

import pytest

from app.api.sse import PING, frame, json_frame, parse_last_event_id
from app.streams import Event


def test_frame_has_event_id_and_data_lines() -> None:
    assert frame("token", b'{"text":"a"}', 3) == b'event: token\nid: 3\ndata: {"text":"a"}\n\n'


def test_newlines_in_data_become_separate_data_lines() -> None:
    assert frame(None, "a\nb") == b"data: a\ndata: b\n\n"


def test_json_frame_is_compact_utf8() -> None:
    assert json_frame({"t": "é"}) == 'data: {"t":"é"}\n\n'.encode()


def test_ping_is_a_comment() -> None:
    assert PING.startswith(b":") and PING.endswith(b"\n\n")


def test_log_event_frame_matches_the_generic_framing() -> None:
    event = Event(5, "token", {"text": "x", "n": 1}, b'{"text":"x","n":1}')
    assert event.sse_frame() == frame("token", event.payload, 5)


@pytest.mark.parametrize(("header", "query", "expected"), [
    (None, None, -1), ("7", None, 7), (None, "4", 4), ("7", "4", 7), ("junk", "2", 2),
    ("-1", None, -1), (" 12 ", None, 12),
])
def test_last_event_id(header: str | None, query: str | None, expected: int) -> None:
    assert parse_last_event_id(header, query) == expected
