"""The chat page while its reply waits for the engine: it says how many are ahead instead of a
silent spinner (headless Chromium, the scripted engine in a real server process)."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page

from tests.browser import send_message, wait_for, wait_for_reply
from tests.test_server import scripted_server, stop


def test_a_waiting_reply_shows_its_place_in_the_queue(page: Page) -> None:
    # One generation at a time (each scripted reply takes 2 s): the page's reply waits.
    process, url = scripted_server("30", env={"STREAMCHAT_MAX_CONCURRENT_GENERATIONS": "1",
                                              "STREAMCHAT_MAX_QUEUE": "2"})
    try:
        page.goto(url + "/")
        wait_for(page, "document.querySelector('#connection').dataset.state === 'connected'")
        for _ in range(2):  # one in the engine, one waiting ahead of the page's
            sid = httpx.post(f"{url}/v1/sessions").json()["id"]
            assert httpx.post(f"{url}/v1/sessions/{sid}/messages",
                              json={"content": "go"}).status_code == 202
        send_message(page, "Hello")
        waiting = wait_for(page, "document.querySelector('.stats.waiting')?.textContent",
                           timeout_s=10)
        assert waiting == "Waiting · 1 ahead"
        wait_for(page, "document.querySelector('.stats.waiting')?.textContent "
                       "=== 'Waiting · next'", timeout_s=10)
        wait_for_reply(page)
        assert page.evaluate("document.querySelector('.stats.waiting')") is None
        stats = page.evaluate("[...document.querySelectorAll('.stats')].pop().textContent")
        assert "TTFT" in stats and "100 tokens" in stats
    finally:
        stop(process)
