"""A conversation's function calls, their outputs and its instructions on the page
(static/items.js): a conversation made through `/v1/conversations` opened from the sidebar shows
each call as "called name(arguments)", each output as a "tool output" bubble naming its call,
inert whatever they hold; the page goes on from there, and every row gets its message's id.
Light and dark, desktop and phone. Headless Chromium against the scripted engine in a real
server process."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.browser import screenshot, send_message, wait_for, wait_for_reply
from tests.test_server import scripted_server, stop

REPLY = "It is sunny."
ARGUMENTS = json.dumps({"city": "Paris"})
# Would set window.__xss if the page put it in as HTML.
HOSTILE = '<img src=x onerror="window.__xss=1"><b onmouseover="window.__xss=2">bold</b>'
OUTPUT = json.dumps({"temp_c": 18, "sky": "clear", "note": HOSTILE})
ITEMS: list[dict[str, object]] = [
    {"type": "message", "role": "developer", "content": "Answer in one sentence."},
    {"type": "message", "role": "user", "content": "What's the weather in Paris?"},
    {"type": "reasoning", "summary": [{"type": "summary_text", "text": "I should look it up."}]},
    {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": ARGUMENTS},
    {"type": "function_call", "call_id": "call_2", "name": "get_time",
     "arguments": json.dumps({"tz": HOSTILE})},
    {"type": "function_call_output", "call_id": "call_1", "output": OUTPUT},
    {"type": "function_call_output", "call_id": "call_2", "output": "09:00"},
    {"type": "message", "role": "assistant", "content": "It is **18 °C** and clear in Paris."},
]
ROWS = ["instructions", "user", "assistant", "call", "call", "tool", "tool", "assistant"]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    process, base = scripted_server("30", env={"SCRIPTED_REPLY": json.dumps([REPLY]),
                                               "SCRIPTED_DELAY_S": "0.01"})
    yield base
    stop(process)


def conversation(url: str, items: list[dict[str, object]] = ITEMS) -> str:
    response = httpx.post(f"{url}/v1/conversations", json={"items": items,
                                                           "metadata": {"from": "page test"}})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def open_from_the_sidebar(page: Page, url: str, cid: str) -> None:
    page.goto(url + "/")
    page.click(f"#conversations li[data-id='{cid}'] .open")
    wait_for(page, f"localStorage.getItem('streamchat.session') === '{cid}'"
                   " && document.querySelectorAll('#messages .row').length > 0")


def rows(page: Page) -> list[tuple[str, str]]:
    """Each row's kind and its bubble's text."""
    return [(r.split()[1], t) for r, t in page.evaluate(
        "[...document.querySelectorAll('#messages > .row')]"
        ".map(r => [r.className, r.querySelector('.msg').textContent])")]


def test_calls_and_outputs_show_as_their_own_bubbles_and_the_page_goes_on_after_them(
        page: Page, url: str) -> None:
    cid = conversation(url)
    open_from_the_sidebar(page, url, cid)
    shown = rows(page)
    assert [kind for kind, _ in shown] == ROWS
    assert shown[0][1] == "developerAnswer in one sentence."
    assert shown[3][1] == f"called get_weather({ARGUMENTS})"
    assert shown[4][1] == f"called get_time({json.dumps({'tz': HOSTILE})})"
    assert shown[5][1] == f"tool output get_weather call_1{OUTPUT}"
    assert shown[6][1] == "tool output get_time call_209:00"
    call = page.locator(".row.call .msg").first
    assert call.locator(".call-name").inner_text() == "get_weather"
    assert call.locator(".call-args").inner_text() == ARGUMENTS
    assert page.locator(".row.tool .tool-body").first.inner_text() == OUTPUT
    assert page.get_attribute(".row.call", "aria-label") == "Assistant called a tool"
    assert page.get_attribute(".row.tool", "aria-label") == "Tool output"
    # The reasoning item: collapsed, with no empty bubble under it.
    reasoning = page.locator(".row.assistant").first
    assert (reasoning.locator("details.reasoning .reasoning-body").text_content() or "").strip() == \
        "I should look it up."
    assert not reasoning.locator(".msg").is_visible()
    # Inert: the would-be markup is text, nothing of it ran.
    page.locator(".row.tool .tool-body").first.hover()
    assert page.evaluate("window.__xss") is None
    assert page.locator("#messages .row.call img, #messages .row.tool img, "
                        "#messages .row b").count() == 0
    assert page.locator(".row.assistant .msg strong").last.inner_text() == "18 °C"

    send_message(page, "And tomorrow?")
    wait_for_reply(page)
    messages = httpx.get(f"{url}/v1/sessions/{cid}").json()["messages"]
    assert [(m["role"], m["content"]) for m in messages[-2:]] == [
        ("user", "And tomorrow?"), ("assistant", REPLY)]
    # Every row is its message's, in order: the new ones named once the reply ended.
    ids = [m["id"] for m in messages]
    wait_for(page, f"[...document.querySelectorAll('#messages > .row')].map(r => r.dataset.id)"
                   f".join() === {json.dumps(','.join(ids))}")
    assert page.get_by_role("button", name="Regenerate this reply").count() == 1
    page.reload()  # and drawn again from the store, the same
    wait_for(page, f"document.querySelectorAll('#messages > .row').length === {len(ids)}")
    assert [kind for kind, _ in rows(page)] == [*ROWS, "user", "assistant"]


def test_an_output_whose_call_is_not_in_the_conversation_names_its_call_id(
        page: Page, url: str) -> None:
    cid = conversation(url, [{"type": "function_call_output", "call_id": "call_x",
                              "output": "42"}])
    open_from_the_sidebar(page, url, cid)
    assert rows(page) == [("tool", "tool output call_x42")]
    assert page.locator(".tool-name").count() == 0


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width,height", [(1280, 860), (375, 740)], ids=["desktop", "phone"])
def test_calls_and_outputs_on_every_screen(browser: Browser, url: str, scheme: str, width: int,
                                           height: int) -> None:
    """Long arguments and outputs wrap inside the bubble; the bubbles follow the colour scheme.
    Screenshots go to tests/artifacts/ for a person to look at."""
    long = "x" * 400
    cid = conversation(url, [
        *ITEMS, {"type": "message", "role": "user", "content": "Look this up."},
        {"type": "function_call", "call_id": "call_long", "name": "search",
         "arguments": json.dumps({"query": long})},
        {"type": "function_call_output", "call_id": "call_long", "output": long * 3}])
    context = browser.new_context(color_scheme=scheme,  # type: ignore[arg-type]
                                  viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        page.add_init_script(f"localStorage.setItem('streamchat.session', '{cid}')")
        page.goto(url + "/")
        wait_for(page, f"document.querySelectorAll('#messages > .row').length === {len(ROWS) + 3}")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        for bubble in (".row.call .msg", ".row.tool .msg"):
            box = page.locator(bubble).last.bounding_box()
            assert box is not None and box["x"] + box["width"] <= width
        dark = page.evaluate("""(() => {
            const rgb = (c) => c.match(/\\d+/g).slice(0, 3).map(Number);
            const lum = ([r, g, b]) => 0.2126 * r + 0.7152 * g + 0.0722 * b;
            const s = getComputedStyle(document.querySelector('.row.tool .tool-body'));
            return [lum(rgb(s.backgroundColor)) < 60, lum(rgb(s.color)) > 160];
        })()""")
        assert dark == [scheme == "dark"] * 2
        screenshot(page, f"page-items-{scheme}-{'phone' if width < 500 else 'desktop'}")
    finally:
        context.close()
