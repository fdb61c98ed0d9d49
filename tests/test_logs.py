"""Log lines (app/logs.py, app/api/http/request_log.py, the stream line of app/metering.py): one per
request and per stream, with the request id and the key, and no text unless asked for."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from app import logs
from app.logs import JsonFormatter, TextFormatter
from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine

SSE = {"Accept": "text/event-stream"}


Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[Lines]:
    """The structured lines logged so far in the test, as their `fields`."""
    with caplog.at_level(logging.INFO, logger="streamchat.access"):
        yield lambda: [record.fields for record in caplog.records  # type: ignore[attr-defined]
                       if hasattr(record, "fields")]


def test_one_line_per_request_and_per_stream_with_ids(logged: Lines) -> None:
    settings = Settings(api_keys="alice:sk-alice-1:chat")
    with TestClient(create_app(settings, ScriptedEngine())) as client:
        headers = {"Authorization": "Bearer sk-alice-1", "X-Request-ID": "req-42"}
        sid = client.post("/v1/sessions", headers=headers).json()["id"]
        reply = client.post(f"/v1/sessions/{sid}/messages", json={"content": "secret words"},
                            headers={**headers, **SSE})
        assert reply.headers["x-request-id"] == "req-42"
        generated = client.get("/v1/models", headers={"X-Request-ID": "bad id with spaces"})
        assert generated.headers["x-request-id"] != "bad id with spaces"
    lines = logged()
    stream = next(line for line in lines if line["event"] == "stream")
    assert stream["request_id"] == "req-42" and stream["key_id"] == "alice"
    assert stream["session_id"] == sid and stream["transport"] == "sse"
    assert stream["outcome"] == "done" and stream["completion_tokens"] == 4
    assert {"queue_ms", "ttft_ms", "duration_ms", "prompt_tokens"} <= set(stream)
    assert "content" not in stream and "reply" not in stream
    requests = [line for line in lines if line["event"] == "request"]
    assert [(r["path"], r["status"]) for r in requests][:2] == [
        ("/v1/sessions", 201), (f"/v1/sessions/{sid}/messages", 200)]
    assert requests[-1]["status"] == 401 and requests[-1]["key_id"] is None
    assert "secret words" not in json.dumps(lines)


def test_text_is_logged_only_when_asked(logged: Lines, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_content_logged", True)
    with TestClient(create_app(Settings(), ScriptedEngine())) as client:
        sid = client.post("/v1/sessions").json()["id"]
        client.post(f"/v1/sessions/{sid}/messages", json={"content": "hi there"}, headers=SSE)
    stream = next(line for line in logged() if line["event"] == "stream")
    assert stream["content"] == "hi there" and stream["reply"] == "Hello there!"


def record(**fields: object) -> logging.LogRecord:
    line = logging.LogRecord("streamchat.access", logging.INFO, __file__, 1, "stream", None, None)
    line.fields = fields
    return line


def test_json_and_text_formats() -> None:
    as_json = json.loads(JsonFormatter().format(record(event="stream", ttft_ms=12.5, key_id=None)))
    assert as_json["event"] == "stream" and as_json["ttft_ms"] == 12.5
    assert as_json["level"] == "info" and as_json["logger"] == "streamchat.access"
    plain = logging.LogRecord("x", logging.WARNING, __file__, 1, "hello %s", ("you",), None)
    assert json.loads(JsonFormatter().format(plain))["message"] == "hello you"
    text = TextFormatter().format(record(event="stream", ttft_ms=12.5, key_id=None))
    assert text.endswith("streamchat.access: event=stream ttft_ms=12.5")


def test_format_follows_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    try:
        assert logs.setup_logging("info", None, False) == "json"
        assert logs.setup_logging("info", "text", False) == "text"
        monkeypatch.setattr("sys.stdout.isatty", lambda: True)
        assert logs.setup_logging("info", None, False) == "text"
    finally:
        logging.basicConfig(force=True, handlers=[logging.NullHandler()])
