"""The chat page while it opens: a message sent before the conversation is on the page (a slow
network, a key being asked for) waits for it, instead of being wiped from the page by it and
sent to a second session (headless Chromium, the scripted engine in a real server process)."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page

from tests.browser import send_message, wait_for, wait_for_reply
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


def test_a_message_sent_while_the_page_opens_waits_for_its_conversation(page: Page) -> None:
    process, url = scripted_server("30")
    try:
        page.add_init_script(SLOW_SESSION)
        page.goto(url + "/")
        wait_for(page, "document.querySelector('#connection').dataset.state === 'connected'")
        assert page.evaluate("localStorage.getItem('streamchat.session')") is None  # still opening
        send_message(page, "Hello")
        wait_for_reply(page)
        assert page.evaluate("document.querySelectorAll('.msg').length") == 2
        session_id = page.evaluate("localStorage.getItem('streamchat.session')")
        stored = httpx.get(f"{url}/v1/sessions/{session_id}").json()["messages"]
        assert [(m["role"], m["status"]) for m in stored] == [("user", "done"),
                                                               ("assistant", "done")]
    finally:
        stop(process)
