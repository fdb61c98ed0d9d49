"""static/sse.js, the page's one SSE parser, unit-tested where it runs: in the browser (headless
Chromium). Each case feeds the parser chunks split as a network may split them."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from tests.test_server import scripted_server, stop

# (chunks as they arrive, the events expected: [event, id, data])
CASES: list[tuple[str, list[str], list[list[Any]]]] = [
    ("one event", ['event: token\nid: 1\ndata: {"text": "Hi", "n": 1}\n\n'],
     [["token", "1", {"text": "Hi", "n": 1}]]),
    ("split everywhere", ["ev", "ent: tok", "en\nid", ": 2\nda", 'ta: {"text"', ': "a"}\n', "\n"],
     [["token", "2", {"text": "a"}]]),
    ("CRLF", ['event: done\r\nid: 3\r\ndata: {"x": 1}\r\n\r\n'], [["done", "3", {"x": 1}]]),
    # The "\n" of a CRLF split across chunks is the same line end, not a blank line.
    ("CR LF split across chunks", ['data: {"a":\r', '\ndata: 1}\r\n\r\n'],
     [["message", None, {"a": 1}]]),
    ("bare CR line ends", ['event: start\rdata: {"a": 2}\r\r'], [["start", None, {"a": 2}]]),
    ("comments and a ping are skipped", [": ping\n\n", ': hello\nevent: token\ndata: {"t": 1}\n\n'],
     [["token", None, {"t": 1}]]),
    ("data on several lines is joined with newlines", ['data: {"a":\ndata: 1}\n\n'],
     [["message", None, {"a": 1}]]),
    ("no space after the colon", ['event:queued\ndata:{"position":0}\n\n'],
     [["queued", None, {"position": 0}]]),
    ("an id is the event's own: progress after a numbered event has none",
     ['id: 5\nevent: token\ndata: {}\n\nevent: queued\ndata: {"position": 1}\n\n'],
     [["token", "5", {}], ["queued", None, {"position": 1}]]),
    ("an event without data is not dispatched", ["event: token\nid: 9\n\n"], []),
    ("data that is not JSON is skipped", ["data: [DONE\n\n", 'data: {"ok": true}\n\n'],
     [["message", None, {"ok": True}]]),
    ("an unfinished event waits for its blank line", ['event: token\ndata: {"a": 1}\n'], []),
    ("unicode split in text", ['data: {"text": "h\u00e9llo \u2603"}\n\n'],
     [["message", None, {"text": "h\u00e9llo \u2603"}]]),
]

RUN = """async ([chunks]) => {
  const { SseParser } = await import('/static/sse.js');
  const parser = new SseParser();
  return chunks.flatMap((c) => parser.push(c)).map((e) => [e.event, e.id, e.data]);
}"""

STREAM = """async () => {
  // readEvents over a real Response whose body arrives byte by byte, a character split in two.
  const { readEvents } = await import('/static/sse.js');
  const bytes = new TextEncoder().encode('event: token\\nid: 1\\ndata: {"text": "\u00e9\u2603"}\\n\\n');
  const body = new ReadableStream({
    start(c) { for (const b of bytes) c.enqueue(new Uint8Array([b])); c.close(); },
  });
  const out = [];
  for await (const e of readEvents(new Response(body))) out.push([e.event, e.id, e.data]);
  return out;
}"""


@pytest.fixture(scope="module")
def server_url() -> Any:
    process, url = scripted_server("30")
    yield url
    stop(process)


def test_the_sse_parser_in_the_browser(page: Page, server_url: str) -> None:
    page.goto(server_url + "/")
    for name, chunks, expected in CASES:
        assert page.evaluate(RUN, [chunks]) == expected, name
    assert page.evaluate(STREAM) == [["token", "1", {"text": "\u00e9\u2603"}]]
