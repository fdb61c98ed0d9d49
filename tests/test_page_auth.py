"""The chat page against a server that requires a key: it asks once, keeps the key in the
browser, and chats (headless Chromium, the scripted engine in a real server process)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.browser import Browser
from tests.test_server import scripted_server, stop

KEY = "sk-page-key-1"
# window.prompt answered as a person would, and counted.
PROMPT_STUB = ("window.__prompts = 0; window.prompt = () => { window.__prompts += 1; "
               f"return '{KEY}'; }};")


@pytest.fixture
def browser() -> Iterator[Browser]:
    chromium = Browser()
    yield chromium
    chromium.close()


def test_the_page_asks_for_a_key_once_and_keeps_it(browser: Browser) -> None:
    process, url = scripted_server("30", env={"STREAMCHAT_API_KEYS": f"alice:{KEY}:chat"})
    try:
        browser.call("Page.enable")
        browser.call("Page.addScriptToEvaluateOnNewDocument", source=PROMPT_STUB)
        browser.open(url + "/")
        browser.wait_for("document.querySelector('#status').dataset.state === 'ready'")
        browser.send_message("Hello")
        browser.wait_for_reply()
        assert browser.js("window.__prompts") == 1
        assert browser.js("localStorage.getItem('streamchat.key')") == KEY
        session_id = browser.js("localStorage.getItem('streamchat.session')")
        stored = httpx.get(f"{url}/v1/sessions/{session_id}",
                           headers={"Authorization": f"Bearer {KEY}"}).json()["messages"]
        assert [m["status"] for m in stored] == ["done", "done"]
        assert httpx.get(f"{url}/v1/sessions/{session_id}").status_code == 401

        browser.open(url + "/")  # the key stays: no second question
        browser.wait_for("document.querySelectorAll('.msg').length === 2")
        assert browser.js("window.__prompts") == 0
    finally:
        stop(process)
