"""The chat page against a server that requires a key: it asks once (a dialog), keeps the key in
the browser, and chats over the WebSocket with it; without one it says what is missing
(headless Chromium, the scripted engine in a real server process)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page

from tests.browser import send_message, wait_for, wait_for_reply
from tests.test_server import scripted_server, stop

KEY = "sk-page-key-1"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    process, base = scripted_server("30", env={"STREAMCHAT_API_KEYS": f"alice:{KEY}:chat"})
    yield base
    stop(process)


def test_the_page_asks_for_a_key_once_and_keeps_it(page: Page, url: str) -> None:
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda f: frames.append(str(f))))
    page.goto(url + "/")
    wait_for(page, "document.querySelector('#key-dialog').open")
    assert page.evaluate("document.activeElement.id") == "key-input"
    page.fill("#key-input", KEY)
    page.press("#key-input", "Enter")
    wait_for(page, "!document.querySelector('#key-dialog').open")
    send_message(page, "Hello")
    wait_for_reply(page)
    assert page.evaluate("localStorage.getItem('streamchat.key')") == KEY
    assert any('"type":"message"' in f for f in frames)  # over the socket, which took the key
    session_id = page.evaluate("localStorage.getItem('streamchat.session')")
    stored = httpx.get(f"{url}/v1/sessions/{session_id}",
                       headers={"Authorization": f"Bearer {KEY}"}).json()["messages"]
    assert [m["status"] for m in stored] == ["done", "done"]
    assert httpx.get(f"{url}/v1/sessions/{session_id}").status_code == 401

    page.reload()  # the key stays: no second question
    wait_for(page, "document.querySelectorAll('.msg').length === 2")
    assert not page.evaluate("document.querySelector('#key-dialog').open")


def test_without_a_key_the_page_says_so_and_asks_again_on_request(page: Page, url: str) -> None:
    page.goto(url + "/")
    wait_for(page, "document.querySelector('#key-dialog').open")
    page.keyboard.press("Escape")  # the person does not give one
    wait_for(page, "!document.querySelector('#banner').hidden")
    assert "needs an API key" in page.inner_text("#banner")
    page.click("#banner >> text=Enter key")
    wait_for(page, "document.querySelector('#key-dialog').open")
    page.fill("#key-input", KEY)
    page.press("#key-input", "Enter")
    wait_for(page, "document.querySelector('#connection').dataset.state === 'connected'")
    send_message(page, "Now with a key")
    wait_for_reply(page)
    assert page.evaluate("localStorage.getItem('streamchat.key')") == KEY
