"""Another site's page, in real Chromium, against the service: a page served from a second local
port (another origin) tries fetch, EventSource and WebSocket. With the defaults each is refused
(and the service counts the refusals); with STREAMCHAT_CORS_ORIGINS naming that origin and a
key, it streams replies over fetch and the WebSocket (the scripted engine in a real server
process; app/api/http/browser_guard.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from tests.test_server import scripted_server, stop

KEY = "sk-other-site-1"
OTHER_SITE = b"<!doctype html><html><head><title>another site</title></head><body></body></html>"

TRY_EVERYTHING = """async (api) => {
  const outcome = {};
  const refused = (promise) => promise.then((r) => `answered ${r.status}`, () => "refused");
  outcome.get = await refused(fetch(api + "/v1/models"));
  outcome.post = await refused(fetch(api + "/v1/sessions", {method: "POST",
      headers: {"Content-Type": "application/json"}, body: "{}"}));
  outcome.eventSource = await new Promise((done) => {
    const source = new EventSource(api + "/v1/sessions/ses_x/messages/msg_x/stream");
    source.onopen = () => { source.close(); done("open"); };
    source.onerror = () => { const state = source.readyState; source.close();
                             done(state === EventSource.CLOSED ? "refused" : "retrying"); };
  });
  outcome.webSocket = await new Promise((done) => {
    const socket = new WebSocket(api.replace("http", "ws") + "/v1/sessions/ses_x/ws");
    socket.onopen = () => { socket.close(); done("open"); };
    socket.onclose = () => done("refused");
  });
  return outcome;
}"""

STREAM_EVERYTHING = """async ([api, key]) => {
  const auth = {"Authorization": "Bearer " + key};
  const created = await fetch(api + "/v1/sessions", {method: "POST",
      headers: {...auth, "Content-Type": "application/json"}, body: "{}"});
  const sid = (await created.json()).id;
  const reply = await fetch(api + `/v1/sessions/${sid}/messages`, {method: "POST",
      headers: {...auth, "Content-Type": "application/json", "Accept": "text/event-stream",
                "X-Request-ID": "page-req-1"},
      body: JSON.stringify({content: "Hi"})});
  const sse = await reply.text();
  const chat = await fetch(api + "/v1/chat/completions", {method: "POST",
      headers: {...auth, "Content-Type": "application/json"},
      body: JSON.stringify({model: "scripted", stream: true,
                            messages: [{role: "user", content: "Hi"}]})});
  const chunks = await chat.text();
  const frames = await new Promise((done, fail) => {
    const socket = new WebSocket(api.replace("http", "ws") + `/v1/sessions/${sid}/ws`,
                                 ["streamchat", "bearer." + key]);
    const seen = [];
    socket.onopen = () => socket.send(JSON.stringify({type: "message", content: "Again"}));
    socket.onmessage = (m) => { const f = JSON.parse(m.data); seen.push(f.type);
                                if (f.type === "done") { socket.close(); done(seen); } };
    socket.onclose = () => fail(new Error("closed after " + seen.join(",")));
  });
  return {created: created.status, status: reply.status, requestId: reply.headers.get("X-Request-ID"),
          sse, chunks, frames};
}"""


class _OtherSite(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(OTHER_SITE)))
        self.end_headers()
        self.wfile.write(OTHER_SITE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def other_site() -> Iterator[str]:
    """A page on another local port: another origin than the service's."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OtherSite)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _origin_refusals(api: str) -> float:
    for line in httpx.get(api + "/metrics", timeout=10).text.splitlines():
        if line.startswith('streamchat_rejected_requests_total{reason="origin"}'):
            return float(line.split()[-1])
    raise AssertionError("no origin refusals series")


def test_with_the_defaults_another_site_reaches_nothing(page: Page, other_site: str) -> None:
    process, api = scripted_server("30")
    try:
        before = _origin_refusals(api)
        page.goto(other_site + "/")
        outcome = page.evaluate(TRY_EVERYTHING, api)
        assert outcome == {"get": "refused", "post": "refused", "eventSource": "refused",
                           "webSocket": "refused"}
        # Refused by the service itself (403 before any work), not only by the browser: the
        # GET, the POST's preflight, the EventSource and the handshake.
        assert _origin_refusals(api) - before == 4
    finally:
        stop(process)


def test_a_listed_origin_with_a_key_streams_replies(page: Page, other_site: str) -> None:
    process, api = scripted_server("30", env={"STREAMCHAT_CORS_ORIGINS": other_site,
                                              "STREAMCHAT_API_KEYS": f"alice:{KEY}:chat",
                                              "SCRIPTED_REPLY": '["Hel", "lo"]'})
    try:
        page.goto(other_site + "/")
        result = page.evaluate(STREAM_EVERYTHING, [api, KEY])
        assert (result["created"], result["status"]) == (201, 200)
        assert result["requestId"] == "page-req-1"  # an exposed header the page can read
        assert "event: token" in result["sse"] and "event: done" in result["sse"]
        assert '"Hel"' in result["chunks"] and "data: [DONE]" in result["chunks"]
        assert result["frames"][0] == "start" and "token" in result["frames"]
        # Without the key, the page reads the 401 (CORS headers on refusals too).
        assert page.evaluate("async (api) => (await fetch(api + '/v1/models')).status", api) == 401
    finally:
        stop(process)
