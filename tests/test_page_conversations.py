"""Conversations on the page (static/conversations.js, static/chat.js): the sidebar from the
server, switching, renaming, deleting, a new chat, regenerate and edit. Headless Chromium
against the scripted engine in a real server process."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page

from tests.browser import send_message, wait_for, wait_for_reply
from tests.test_server import scripted_server, stop

REPLY = "Sure."


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    process, base = scripted_server("30", env={"SCRIPTED_REPLY": json.dumps([REPLY])})
    yield base
    stop(process)


def turns(page: Page) -> list[tuple[str, str]]:
    return [(r.split(" ")[1], t.strip()) for r, t in page.evaluate(
        "[...document.querySelectorAll('#messages .msg')].map(m => [m.className, m.textContent])")]


def sidebar(page: Page) -> list[str]:
    return [t.strip() for t in page.locator("#conversations .name").all_inner_texts()]


def chat(page: Page, text: str) -> None:
    send_message(page, text)
    wait_for_reply(page)


def stored(url: str, page: Page) -> dict[str, object]:
    sid = page.evaluate("localStorage.getItem('streamchat.session')")
    return dict(httpx.get(f"{url}/v1/sessions/{sid}").json())


def test_the_sidebar_lists_conversations_newest_first_and_switching_shows_each_history(
        page: Page, url: str) -> None:
    page.goto(url + "/")
    chat(page, "First conversation")
    page.click("#new-chat")
    wait_for(page, "document.querySelectorAll('#messages .msg').length === 0")
    chat(page, "Second conversation")
    chat(page, "and a second turn")
    wait_for(page, "document.querySelectorAll('#conversations .name').length === 2")
    assert sidebar(page)[:2] == ["Second conversation", "First conversation"]
    assert page.inner_text("#chat-title") == "Second conversation"

    page.click("#conversations li:nth-child(2) .open")
    wait_for(page, "document.querySelector('#chat-title').textContent === 'First conversation'")
    assert turns(page) == [("user", "First conversation"), ("assistant", REPLY)]
    wait_for(page, "document.querySelector('#conversations li:nth-child(2) .open')"
                   ".getAttribute('aria-current') === 'true'")
    assert page.get_attribute("#conversations li:nth-child(1) .open", "aria-current") is None

    page.click("#conversations li:nth-child(1) .open")
    wait_for(page, "document.querySelector('#chat-title').textContent === 'Second conversation'")
    assert turns(page) == [("user", "Second conversation"), ("assistant", REPLY),
                           ("user", "and a second turn"), ("assistant", REPLY)]
    page.reload()  # the open conversation is remembered
    wait_for(page, "document.querySelectorAll('#messages .msg').length === 4")


def test_rename_and_delete_a_conversation(page: Page, url: str) -> None:
    page.on("dialog", lambda dialog: dialog.accept())  # "Delete …?"
    page.goto(url + "/")
    chat(page, "Keep me")
    sid = page.evaluate("localStorage.getItem('streamchat.session')")
    item = page.locator(f"#conversations li[data-id='{sid}']")
    item.get_by_role("button", name="Rename “Keep me”").click()
    page.fill("#conversations input.rename", "Renamed by hand")
    page.press("#conversations input.rename", "Enter")
    wait_for(page, f"document.querySelector(\"#conversations li[data-id='{sid}'] .name\")"
                   "?.textContent === 'Renamed by hand'")
    assert httpx.get(f"{url}/v1/sessions/{sid}").json()["title"] == "Renamed by hand"

    page.locator(f"#conversations li[data-id='{sid}']").get_by_role(
        "button", name="Delete “Renamed by hand”").click()
    wait_for(page, f"!document.querySelector(\"#conversations li[data-id='{sid}']\")")
    assert httpx.get(f"{url}/v1/sessions/{sid}").status_code == 404
    # The open conversation was the one deleted: the page is on a new, empty one.
    wait_for(page, f"localStorage.getItem('streamchat.session') !== '{sid}'")
    assert turns(page) == []


def test_regenerate_replaces_the_last_reply_and_edit_resends_the_last_message(page: Page, url: str) -> None:
    page.goto(url + "/")
    chat(page, "Hello")
    first = stored(url, page)["messages"]
    page.fill("#prompt", "a draft of the next question")
    page.get_by_role("button", name="Regenerate this reply").click()
    wait_for(page, f"document.querySelector('.row.assistant')?.dataset.id !== '{first[1]['id']}'"
                   " && document.querySelector('.row.assistant')?.dataset.id")
    wait_for_reply(page)
    after = stored(url, page)["messages"]
    assert [(m["role"], m["content"]) for m in after] == [("user", "Hello"), ("assistant", REPLY)]
    assert after[1]["id"] != first[1]["id"]  # a new reply in place of the old one
    assert page.input_value("#prompt") == "a draft of the next question"  # left alone

    page.get_by_role("button", name="Edit your last message").click()
    assert page.input_value("#prompt") == "Hello"
    assert page.is_visible("#editing")
    page.fill("#prompt", "Hello, edited")
    page.press("#prompt", "Enter")
    wait_for(page, "document.querySelector('.msg.user')?.textContent === 'Hello, edited'")
    wait_for_reply(page)
    edited = stored(url, page)["messages"]
    assert [(m["role"], m["content"]) for m in edited] == [("user", "Hello, edited"), ("assistant", REPLY)]
    assert turns(page) == [("user", "Hello, edited"), ("assistant", REPLY)]


def test_the_sidebar_collapses_on_a_phone(page: Page, url: str) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(url + "/")
    wait_for(page, "document.querySelector('#connection').dataset.state === 'connected'")
    assert not page.is_visible("#sidebar")
    assert page.get_attribute("#sidebar-toggle", "aria-expanded") == "false"
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # nothing sticks out
    page.click("#sidebar-toggle")
    assert page.is_visible("#sidebar") and page.is_visible("#new-chat")
    page.keyboard.press("Escape")
    assert not page.is_visible("#sidebar")
