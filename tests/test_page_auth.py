"""The chat page against a server that requires a key: it asks once, keeps the key in the
browser, and chats (headless Chromium, the scripted engine in a real server process)."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page

from tests.browser import send_message, wait_for, wait_for_reply
from tests.test_server import scripted_server, stop

KEY = "sk-page-key-1"
# window.prompt answered as a person would, and counted.
PROMPT_STUB = ("window.__prompts = 0; window.prompt = () => { window.__prompts += 1; "
               f"return '{KEY}'; }};")


def test_the_page_asks_for_a_key_once_and_keeps_it(page: Page) -> None:
    process, url = scripted_server("30", env={"STREAMCHAT_API_KEYS": f"alice:{KEY}:chat"})
    try:
        page.add_init_script(PROMPT_STUB)
        page.goto(url + "/")
        wait_for(page, "document.querySelector('#status').dataset.state === 'ready'")
        send_message(page, "Hello")
        wait_for_reply(page)
        assert page.evaluate("window.__prompts") == 1
        assert page.evaluate("localStorage.getItem('streamchat.key')") == KEY
        session_id = page.evaluate("localStorage.getItem('streamchat.session')")
        stored = httpx.get(f"{url}/v1/sessions/{session_id}",
                           headers={"Authorization": f"Bearer {KEY}"}).json()["messages"]
        assert [m["status"] for m in stored] == ["done", "done"]
        assert httpx.get(f"{url}/v1/sessions/{session_id}").status_code == 401

        page.goto(url + "/")  # the key stays: no second question
        wait_for(page, "document.querySelectorAll('.msg').length === 2")
        assert page.evaluate("window.__prompts") == 0
    finally:
        stop(process)
