"""Replies as Markdown (static/render.js): code highlighted with a copy button, and model output
that tries to run script stays inert, streamed or stored. Screenshots of the page, light and
dark, desktop and phone, go to tests/artifacts/. Headless Chromium against the scripted engine
in a real server process."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.browser import screenshot, send_message, wait_for, wait_for_reply
from tests.test_server import scripted_server, stop

# Each would set window.__xss (or navigate) if it ran.
HOSTILE = [
    "Links: [click](javascript:window.__xss=1) and [ok](https://example.com/docs) ",
    "<script>window.__xss=2</script> <img src=x onerror=\"window.__xss=3\"> ",
    "<a href=\"javascript:window.__xss=4\">raw link</a> <b onmouseover=\"window.__xss=5\">bold</b>\n\n",
    "<iframe src=\"javascript:window.__xss=6\"></iframe> <svg onload=\"window.__xss=7\"></svg>\n\n",
    "[data](data:text/html,<script>window.__xss=8</script>) <style>body{display:none}</style>\n\n",
]
MARKDOWN = [
    "## Reading a file in Python\n\nUse **`pathlib`**, which handles *paths* for you:\n\n",
    "```python\nfrom pathlib import Path\n\n\ndef read_config(path: str) -> dict[str, str]:\n",
    "    \"\"\"Each `key = value` line of a file.\"\"\"\n    pairs = {}\n",
    "    for line in Path(path).read_text().splitlines():\n        key, _, value = line.partition('=')\n",
    "        pairs[key.strip()] = value.strip()\n    return pairs\n```\n\n",
    "Then:\n\n1. call it with your file\n2. check the keys\n\n| key | meaning |\n|---|---|\n",
    "| `host` | where to connect |\n| `port` | which port |\n\n",
    "> Tip: run `python -m json.tool` on JSON files.\n",
]


@pytest.fixture(scope="module")
def hostile_url() -> Iterator[str]:
    process, base = scripted_server("30", env={"SCRIPTED_REPLY": json.dumps(HOSTILE),
                                               "SCRIPTED_DELAY_S": "0.01"})
    yield base
    stop(process)


@pytest.fixture(scope="module")
def markdown_url() -> Iterator[str]:
    process, base = scripted_server("30", env={"SCRIPTED_REPLY": json.dumps(MARKDOWN),
                                               "SCRIPTED_DELAY_S": "0.01"})
    yield base
    stop(process)


def assert_inert(page: Page) -> None:
    reply = page.locator(".msg.assistant").last
    # Poke what a person might: hover the reply, click the link whose target was javascript:.
    reply.hover()
    reply.get_by_text("click", exact=True).click()
    assert page.evaluate("window.__xss") is None
    assert page.evaluate("document.querySelectorAll('.msg script, .msg img, .msg iframe, "
                         ".msg svg, .msg style, .msg [onerror], .msg [onload], "
                         ".msg [onmouseover]').length") == 0
    hrefs = page.evaluate(
        "[...document.querySelectorAll('.msg.assistant a')].map(a => a.getAttribute('href'))")
    assert "https://example.com/docs" in hrefs
    assert all(h is None or h.startswith("https:") for h in hrefs), hrefs
    # Raw HTML is shown as the text it is.
    assert "<script>window.__xss=2</script>" in reply.inner_text()
    assert page.evaluate("getComputedStyle(document.body).display") != "none"


def test_hostile_output_stays_inert_streamed_and_stored(page: Page, hostile_url: str) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(hostile_url + "/")
    send_message(page, "Say something dangerous")
    wait_for_reply(page)
    assert_inert(page)
    page.reload()  # the same text, rendered from the stored history
    wait_for(page, "document.querySelector('.msg.assistant a')")
    assert_inert(page)
    assert dialogs == []


def test_the_page_forbids_inline_script(page: Page, hostile_url: str) -> None:
    response = page.goto(hostile_url + "/")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    # An inline script a bug might let through is refused by the browser itself.
    ran = page.evaluate("""() => new Promise((resolve) => {
        document.addEventListener('securitypolicyviolation', () => resolve('blocked'), { once: true });
        const s = document.createElement('script');
        s.textContent = 'window.__inline = 1';
        document.body.append(s);
        setTimeout(() => resolve(window.__inline ? 'ran' : 'silent'), 500);
    })""")
    assert ran == "blocked"


def test_markdown_code_is_highlighted_with_a_copy_button(page: Page, markdown_url: str) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(markdown_url + "/")
    send_message(page, "How do I read a config file?")
    wait_for_reply(page)
    reply = page.locator(".msg.assistant").last
    assert reply.locator("h2").inner_text() == "Reading a file in Python"
    assert reply.locator("ol li").count() == 2 and reply.locator("table td").count() == 4
    assert reply.locator("pre code.hljs .hljs-keyword").count() >= 3  # highlighted as Python
    assert reply.locator(".code-bar span").inner_text() == "python"
    reply.get_by_role("button", name="Copy python code").click()
    assert page.evaluate("navigator.clipboard.readText()").startswith("from pathlib import Path")
    wait_for(page, "document.querySelector('.code-bar .copy').textContent === 'Copied'")


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width,height", [(1280, 860), (375, 740)], ids=["desktop", "phone"])
def test_screenshots(browser: Browser, markdown_url: str, scheme: str, width: int, height: int) -> None:
    """The page as people see it, for a person to look at (tests/artifacts/, not committed)."""
    context = browser.new_context(color_scheme=scheme,  # type: ignore[arg-type]
                                  viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        page.goto(markdown_url + "/")
        send_message(page, "How do I read a config file?")
        wait_for_reply(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert (background == "rgb(15, 17, 21)") == (scheme == "dark")
        screenshot(page, f"page-{scheme}-{'phone' if width < 500 else 'desktop'}")
    finally:
        context.close()
