"""End to end: the chat page in headless Chromium against the real service."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page

from tests.browser import send_message, wait_for, wait_for_reply
from tests.e2e_server import LiveServer

pytestmark = pytest.mark.e2e


def test_chat_page_streams_a_reply_and_keeps_it_across_a_reload(live_server: LiveServer,
                                                                page: Page) -> None:
    page.goto(live_server.url + "/")
    wait_for(page, "document.querySelector('#status').dataset.state === 'ready'")
    assert "SmolLM2" in page.evaluate("document.body.innerText")
    send_message(page, "Say hello in five words.")
    wait_for_reply(page)
    reply = page.evaluate("[...document.querySelectorAll('.msg.assistant')].at(-1).textContent")
    assert reply.strip()
    assert "tokens" in page.evaluate("document.querySelector('.stats').textContent")

    session_id = page.evaluate("localStorage.getItem('streamchat.session')")
    stored = httpx.get(f"{live_server.url}/v1/sessions/{session_id}").json()["messages"]
    assert [(m["role"], m["status"]) for m in stored] == [("user", "done"), ("assistant", "done")]
    assert stored[1]["content"].strip() == reply.strip()

    page.goto(live_server.url + "/")  # a reload shows the same conversation
    wait_for(page, "document.querySelectorAll('.msg').length === 2")
    assert page.evaluate("localStorage.getItem('streamchat.session')") == session_id
