"""End to end: the chat page in headless Chromium against the real service and the real engine.
Replies are kept short (the session's max_tokens) except where a test needs one long enough to
act in the middle of it (ignore_eos makes its length certain)."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page

from tests.browser import send_message, wait_for, wait_for_reply
from tests.e2e_server import LiveServer

pytestmark = pytest.mark.e2e

# Long enough to reload or stop in the middle on a 2-core CPU (about 2-6 s), short enough to keep
# the suite quick.
LONG = {"max_tokens": 160, "ignore_eos": True, "temperature": 0}
SHORT = {"max_tokens": 12, "temperature": 0}


def open_session(page: Page, server: LiveServer, params: dict[str, object], transport: str = "ws") -> str:
    """A new conversation with these params, open on the page."""
    sid = str(httpx.post(f"{server.url}/v1/sessions", json={"params": params}).json()["id"])
    page.add_init_script(f"localStorage.setItem('streamchat.session', '{sid}')")
    page.goto(f"{server.url}/?transport={transport}")
    wait_for(page, "document.querySelector('#connection').dataset.state === 'connected'")
    return sid


def reply_text(page: Page) -> str:
    return str(page.evaluate("[...document.querySelectorAll('.msg.assistant')].at(-1).textContent"))


def words(text: str) -> list[str]:
    return text.split()


def stored(server: LiveServer, sid: str) -> list[dict[str, object]]:
    return list(httpx.get(f"{server.url}/v1/sessions/{sid}").json()["messages"])


def test_the_reply_shows_while_it_streams_and_stays_after_a_reload(live_server: LiveServer,
                                                                  page: Page) -> None:
    sid = open_session(page, live_server, LONG)
    # The model's name comes from /v1/models, fetched apart from the connection: waited for (a
    # CI run read the header before it came).
    assert "SmolLM2" in wait_for(page, "document.querySelector('#model').textContent")
    send_message(page, "Count from one to fifty.")
    # Seen with part of its text before its end: the reply element is still streaming.
    partial = wait_for(page, "document.querySelector('.msg.assistant.streaming')?.textContent")
    wait_for_reply(page)
    final = reply_text(page)
    assert partial and len(partial) < len(final)
    assert "TTFT" in page.inner_text(".stats") and "160 tokens" in page.inner_text(".stats")
    messages = stored(live_server, sid)
    assert [(m["role"], m["status"]) for m in messages] == [("user", "done"), ("assistant", "done")]
    page.reload()
    wait_for(page, "document.querySelectorAll('.msg').length === 2")
    assert reply_text(page).strip() == final.strip()


def test_stop_ends_the_reply_and_keeps_its_text(live_server: LiveServer, page: Page) -> None:
    sid = open_session(page, live_server, {**LONG, "max_tokens": 400})
    send_message(page, "Write a long story about a lighthouse.")
    wait_for(page, "document.querySelector('.msg.assistant.streaming')?.textContent.length > 10")
    page.click("#send")  # Stop
    wait_for_reply(page)
    assert "stopped" in page.inner_text(".stats")
    reply = stored(live_server, sid)[-1]
    assert reply["status"] == "cancelled" and reply["finish_reason"] == "cancelled"
    assert 0 < reply["usage"]["completion_tokens"] < 400  # type: ignore[index]
    # The page shows the text as Markdown, so a paragraph break ("\n\n") reads as one newline in
    # its textContent: the words are compared (a CI run stopped after a break and failed on it).
    assert words(reply_text(page)) == words(str(reply["content"]))


def test_switching_conversations_shows_each_history(live_server: LiveServer, page: Page) -> None:
    open_session(page, live_server, SHORT)
    send_message(page, "Name a colour.")
    wait_for_reply(page)
    first_reply = reply_text(page)
    page.click("#new-chat")
    wait_for(page, "document.querySelectorAll('#messages .msg').length === 0")
    send_message(page, "Name an animal.")
    wait_for_reply(page)
    page.locator("#conversations .open", has_text="Name a colour.").click()
    wait_for(page, "document.querySelector('.msg.user')?.textContent === 'Name a colour.'")
    assert page.locator(".msg").count() == 2 and reply_text(page) == first_reply
    page.locator("#conversations .open", has_text="Name an animal.").click()
    wait_for(page, "document.querySelector('.msg.user')?.textContent === 'Name an animal.'")
    assert page.locator(".msg").count() == 2


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_a_reload_mid_reply_resumes_it_without_duplication(live_server: LiveServer, page: Page,
                                                           transport: str) -> None:
    sid = open_session(page, live_server, LONG, transport)
    send_message(page, "Count from one to a hundred.")
    wait_for(page, "document.querySelector('.msg.assistant.streaming')?.textContent.length > 5")
    page.reload()
    # Resumed, not just redrawn from the store: it streams again after the reload.
    wait_for(page, "document.querySelector('.msg.assistant.streaming')")
    wait_for_reply(page)
    reply = stored(live_server, sid)[-1]
    assert reply["status"] == "done" and reply["usage"]["completion_tokens"] == 160  # type: ignore[index]
    # Every token once, in order: what the page built from the resumed stream is exactly what
    # it renders from the stored reply.
    resumed = reply_text(page)
    page.reload()
    wait_for(page, "document.querySelector('.stats')")
    assert reply_text(page) == resumed


def test_the_keyboard_alone_sends_a_message(live_server: LiveServer, page: Page) -> None:
    sid = open_session(page, live_server, SHORT)
    assert page.evaluate("document.activeElement.id") == "prompt"  # it opens ready to type
    page.keyboard.type("Say hi.")
    page.keyboard.press("Enter")
    wait_for_reply(page)
    assert stored(live_server, sid)[0]["content"] == "Say hi."
    assert wait_for(page, "document.querySelector('#announcer').textContent").startswith(
        "Reply finished:")
