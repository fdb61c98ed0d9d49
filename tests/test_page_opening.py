"""The chat page while it opens: a message sent before the conversation is on the page (a slow
network, a key being asked for) waits for it, instead of being wiped from the page by it and
sent to a second session (headless Chromium, the scripted engine in a real server process)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.browser import Browser
from tests.test_server import scripted_server, stop

# Creating the page's session takes 1.5 s, as on a slow network.
SLOW_SESSION = """
const realFetch = window.fetch.bind(window);
window.fetch = async (url, init) => {
  if (String(url) === '/v1/sessions' && init?.method === 'POST') {
    await new Promise((r) => setTimeout(r, 1500));
  }
  return realFetch(url, init);
};"""


@pytest.fixture
def browser() -> Iterator[Browser]:
    chromium = Browser()
    yield chromium
    chromium.close()


def test_a_message_sent_while_the_page_opens_waits_for_its_conversation(
        browser: Browser) -> None:
    process, url = scripted_server("30")
    try:
        browser.call("Page.enable")
        browser.call("Page.addScriptToEvaluateOnNewDocument", source=SLOW_SESSION)
        browser.open(url + "/")
        browser.wait_for("document.querySelector('#status').dataset.state === 'ready'")
        assert browser.js("localStorage.getItem('streamchat.session')") is None  # still opening
        browser.send_message("Hello")
        browser.wait_for_reply()
        assert browser.js("document.querySelectorAll('.msg').length") == 2
        session_id = browser.js("localStorage.getItem('streamchat.session')")
        stored = httpx.get(f"{url}/v1/sessions/{session_id}").json()["messages"]
        assert [(m["role"], m["status"]) for m in stored] == [("user", "done"),
                                                               ("assistant", "done")]
    finally:
        stop(process)
