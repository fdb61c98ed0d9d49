"""What the page says when the server refuses a message: busy (429) or not ready (503), each
with when to retry, the text kept in the message box and the page still usable. Headless
Chromium against the scripted engine in a real server process."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page

from tests.browser import send_message, wait_for, wait_for_reply
from tests.test_server import scripted_server, stop


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_a_full_queue_says_busy_and_when_to_retry(page: Page, transport: str) -> None:
    # One generation at a time and no queue: while another client's reply runs, the page's
    # message is refused at once.
    process, url = scripted_server("30", env={"STREAMCHAT_MAX_CONCURRENT_GENERATIONS": "1",
                                              "STREAMCHAT_MAX_QUEUE": "0",
                                              "SCRIPTED_DELAY_S": "0.05"})
    try:
        page.goto(f"{url}/?transport={transport}")
        wait_for(page, "document.querySelector('#connection').dataset.state === 'connected'")
        other = httpx.post(f"{url}/v1/sessions").json()["id"]
        assert httpx.post(f"{url}/v1/sessions/{other}/messages", json={"content": "go"}).status_code == 202
        send_message(page, "Are you there?")
        wait_for(page, "!document.querySelector('#banner').hidden")
        banner = page.inner_text("#banner")
        assert "The server is busy" in banner and "Try again in" in banner, banner
        assert page.get_attribute("#banner", "role") == "alert"
        assert page.input_value("#prompt") == "Are you there?"  # nothing lost
        assert page.locator(".msg").count() == 0  # no half-made turn left on the page
        assert page.inner_text("#send") == "Send"  # not frozen
        sid = page.evaluate("localStorage.getItem('streamchat.session')")
        assert httpx.get(f"{url}/v1/sessions/{sid}").json()["messages"] == []
        # Once the other reply is done, the same text goes through.
        wait_for(page, f"fetch('/v1/sessions/{other}').then(r => r.json())"
                       ".then(s => s.messages[1].status === 'done')")
        page.click("#send")
        wait_for_reply(page)
        assert page.is_hidden("#banner")
    finally:
        stop(process)


def test_a_server_still_loading_says_so_and_when_to_retry(page: Page) -> None:
    process, url = scripted_server("30", env={"SCRIPTED_LOAD_S": "6"}, ready=False)
    try:
        assert httpx.get(url + "/ready").status_code == 503
        page.goto(url + "/")
        wait_for(page, "document.querySelector('#connection').dataset.state === 'loading'")
        assert page.inner_text("#connection .label") == "Starting up…"
        send_message(page, "Hello early")
        wait_for(page, "!document.querySelector('#banner').hidden")
        banner = page.inner_text("#banner")
        assert "starting up" in banner and "Try again in" in banner, banner
        assert page.input_value("#prompt") == "Hello early"
        wait_for(page, "document.querySelector('#connection').dataset.state === 'connected'", 30)
        page.click("#send")
        wait_for_reply(page)
    finally:
        stop(process)
