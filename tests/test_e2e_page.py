"""End to end: the chat page in headless Chromium against the real service."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.browser import Browser
from tests.e2e_server import LiveServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def browser() -> Iterator[Browser]:
    chromium = Browser()
    yield chromium
    chromium.close()


def test_chat_page_streams_a_reply_and_keeps_it_across_a_reload(live_server: LiveServer,
                                                                browser: Browser) -> None:
    browser.open(live_server.url + "/")
    browser.wait_for("document.querySelector('#status').dataset.state === 'ready'")
    assert "SmolLM2" in browser.js("document.body.innerText")
    browser.send_message("Say hello in five words.")
    browser.wait_for_reply()
    reply = browser.js("[...document.querySelectorAll('.msg.assistant')].at(-1).textContent")
    assert reply.strip()
    assert "tokens" in browser.js("document.querySelector('.stats').textContent")

    session_id = browser.js("localStorage.getItem('streamchat.session')")
    stored = httpx.get(f"{live_server.url}/v1/sessions/{session_id}").json()["messages"]
    assert [(m["role"], m["status"]) for m in stored] == [("user", "done"), ("assistant", "done")]
    assert stored[1]["content"].strip() == reply.strip()

    browser.open(live_server.url + "/")  # a reload shows the same conversation
    browser.wait_for("document.querySelectorAll('.msg').length === 2")
    assert browser.js("localStorage.getItem('streamchat.session')") == session_id
