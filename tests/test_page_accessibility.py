"""The page with the keyboard only and with a screen reader: every control named, a sensible
focus order, a message sent without a mouse, and the reply announced once, when complete.
Headless Chromium against the scripted engine in a real server process."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.browser import wait_for, wait_for_reply
from tests.test_server import scripted_server, stop

TOKENS = [f"w{i} " for i in range(40)]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    process, base = scripted_server("30", env={"SCRIPTED_REPLY": json.dumps(TOKENS),
                                               "SCRIPTED_DELAY_S": "0.04"})
    yield base
    stop(process)


NAME = """(e) => e.getAttribute('aria-label') || (e.labels && e.labels[0]?.textContent.trim())
               || e.textContent.trim() || e.id"""


def focused(page: Page) -> str:
    return str(page.evaluate(f"({NAME})(document.activeElement)"))


def test_every_control_has_a_name(page: Page, url: str) -> None:
    page.goto(url + "/")
    wait_for(page, "document.querySelector('#connection').dataset.state === 'connected'")
    unnamed = page.evaluate("""[...document.querySelectorAll('button, input, textarea, select')]
        .filter((e) => !(e.getAttribute('aria-label') || e.labels?.length || e.textContent.trim()))
        .map((e) => e.outerHTML)""")
    assert unnamed == []
    assert page.get_attribute("#messages", "aria-live") is None  # tokens are not read out one by one
    assert page.get_attribute("#announcer", "aria-live") == "polite"


def test_a_message_sent_with_the_keyboard_only_and_announced_when_complete(page: Page, url: str) -> None:
    page.goto(url + "/")
    wait_for(page, "document.querySelector('#connection').dataset.state === 'connected'")
    assert focused(page) == "Message"  # the page opens ready to type
    page.keyboard.type("Hello from the keyboard")
    page.keyboard.press("Enter")
    wait_for(page, "document.querySelector('.msg.assistant.streaming')?.textContent")
    assert page.inner_text("#announcer") == ""  # nothing announced while it streams
    wait_for_reply(page)
    announced = wait_for(page, "document.querySelector('#announcer').textContent")
    assert announced.startswith("Reply finished:") and "w39" in announced
    assert page.inner_text(".msg.user") == "Hello from the keyboard"
    page.keyboard.press("Tab")
    assert focused(page) == "Send message"


def test_the_focus_order_runs_from_the_skip_link_to_the_message_box(page: Page, url: str) -> None:
    page.goto(url + "/")
    wait_for(page, "document.querySelector('#connection').dataset.state === 'connected'")
    backwards = []
    for _ in range(20):  # Shift+Tab from the message box back to the start of the page
        page.keyboard.press("Shift+Tab")
        backwards.append(focused(page))
        if backwards[-1] == "Skip to the message box":
            break
    order = [*reversed(backwards), "Message"]
    assert order[0] == "Skip to the message box"
    assert order.index("New chat") < order.index("Show conversations") < order.index(
        "Conversation settings") < order.index("Message")
    assert page.is_visible("a.skip")  # shown while it has the focus
    page.keyboard.press("Enter")
    wait_for(page, "document.activeElement.id === 'prompt'")
