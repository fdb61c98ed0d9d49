"""A reply's reasoning on the page (static/reasoning.js, static/turn.js): with
STREAMCHAT_REASONING_PARSER its `reasoning` events show in a <details> above the answer,
collapsed unless opened, live over the WebSocket and SSE, resumed after a reload without a
piece shown twice, and again from the stored message's `reasoning` when the conversation is
opened. Headless Chromium against the scripted engine (its think tokens, tests/fakes.py) in a
real server process."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.browser import send_message, wait_for, wait_for_reply
from tests.test_server import scripted_server, stop

# Distinct pieces, so that a piece shown twice or lost shows in the text; one that would run
# script if the reasoning were put in the page as HTML; 40 ms apart: about 2.5 s of reasoning.
THOUGHTS = [f"r{i} " for i in range(60)]
HOSTILE = "<img src=x onerror=\"window.__xss=1\"> <b onmouseover=\"window.__xss=2\">b</b> "
ANSWER = ["The ", "answer ", "is ", "42."]
REASONING = " ".join(("".join(THOUGHTS) + HOSTILE).split())
REPLY = "".join(ANSWER)

ROW = "[...document.querySelectorAll('.row.assistant')].at(-1)"
DETAILS = f"{ROW}?.querySelector('details.reasoning')"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    tokens = ["<think>", *THOUGHTS, HOSTILE, "</think>", *ANSWER]
    process, base = scripted_server("30", env={"SCRIPTED_REPLY": json.dumps(tokens),
                                               "SCRIPTED_DELAY_S": "0.04",
                                               "STREAMCHAT_REASONING_PARSER": "deepseek_r1"})
    yield base
    stop(process)


def words(page: Page, expression: str) -> str:
    return " ".join(str(page.evaluate(f"{expression}?.textContent ?? ''")).split())


def assert_collapsed_above_the_answer(page: Page) -> None:
    """The reasoning, closed, before the answer's bubble, which holds the answer alone."""
    details = page.locator(".row.assistant details.reasoning").last
    assert not details.evaluate("d => d.open")
    assert details.locator("summary").inner_text() == "Reasoning"
    assert not details.locator(".reasoning-body").is_visible()
    assert page.evaluate(f"{ROW}.firstElementChild === {DETAILS}")
    assert words(page, DETAILS + ".querySelector('.reasoning-body')") == REASONING
    answer = words(page, f"{ROW}.querySelector('.msg.assistant')")
    assert answer == REPLY and "r0" not in answer
    # Model text, never markup: the would-be tags are text, nothing of them ran.
    assert page.evaluate("window.__xss") is None
    assert page.evaluate("document.querySelectorAll('.reasoning img, .reasoning b').length") == 0


def open_it(page: Page) -> None:
    page.locator(".row.assistant details.reasoning summary").last.click()
    wait_for(page, f"{DETAILS}.open")
    body = page.locator(".row.assistant .reasoning-body").last
    assert body.is_visible()
    assert " ".join(body.inner_text().split()) == REASONING
    assert "r59" in body.inner_text() and HOSTILE.split()[0] in body.inner_text()


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_reasoning_is_collapsed_above_the_answer_live_and_in_the_history(
        page: Page, url: str, transport: str) -> None:
    page.goto(f"{url}/?transport={transport}")
    send_message(page, "What is the answer?")
    # While it reasons: "Thinking…", closed, and no answer yet.
    wait_for(page, f"{DETAILS}?.querySelector('.reasoning-body').textContent.includes('r3 ')")
    assert page.evaluate(f"{DETAILS}.querySelector('summary').textContent") == "Thinking…"
    assert not page.evaluate(f"{DETAILS}.open")
    wait_for_reply(page)
    assert_collapsed_above_the_answer(page)
    open_it(page)
    page.locator(".row.assistant details.reasoning summary").last.click()
    wait_for(page, f"!{DETAILS}.open")

    page.reload()  # the conversation opened again: from the stored message
    wait_for(page, f"{DETAILS}?.querySelector('.reasoning-body').textContent")
    wait_for_reply(page)
    assert page.locator(".row.assistant").count() == 1
    assert_collapsed_above_the_answer(page)
    # A person on the keyboard opens it as well.
    page.locator(".row.assistant details.reasoning summary").last.focus()
    page.keyboard.press("Enter")
    wait_for(page, f"{DETAILS}.open")


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_a_reload_mid_reasoning_resumes_it_without_duplication(
        page: Page, url: str, transport: str) -> None:
    page.goto(f"{url}/?transport={transport}")
    send_message(page, "What is the answer?")
    wait_for(page, f"{DETAILS}?.querySelector('.reasoning-body').textContent.includes('r3 ')")
    page.reload()
    # Still streaming after the reload: it resumed the reply, it did not just show the stored one.
    wait_for(page, f"{ROW}?.querySelector('.msg.assistant.streaming')")
    wait_for_reply(page)
    assert page.locator(".row.assistant").count() == 1
    assert page.locator(".row.assistant details.reasoning").count() == 1
    assert_collapsed_above_the_answer(page)
    open_it(page)
