"""The chat page in headless Chromium, driven by Playwright (its sync API): fixtures and the few
steps the page tests share, to use the page as a person would (type, send, wait, read).

A pytest plugin (tests/conftest.py's pytest_plugins):
  browser  the system's Chromium (`make test` installs it with scripts/test-deps.sh), headless,
           one per test module; Playwright downloads no browser of its own.
  page     a fresh context (its own storage) and page per test, 1000x800; on a failure its
           screenshot goes to tests/artifacts/<test>.png, and the page's errors to the report.
Helpers: send_message(page, text), wait_for_reply(page), wait_for(page, expression),
screenshot(page, name).

Sync tests only. The sync API runs its own asyncio loop on the test's thread, and marks it as
running for as long as Playwright is started, between calls too: pytest-asyncio then cannot run
an async test's loop ("Cannot run the event loop while another loop is running"). Hence one
browser per module, not per session (it stops before the next module's tests, Chromium starts
in about a second), and an async test in a module that uses the browser fails at once.
"""

from __future__ import annotations

import inspect
import re
import shutil
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
VIEWPORT = {"width": 1000, "height": 800}
# Long enough for a reply from the real engine on a busy 2-core machine.
TIMEOUT_S = 60
CHROMIUM_ARGS = ["--no-sandbox",  # the tests run as root: Chromium refuses its sandbox there
                 "--disable-gpu", "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_binary() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("chromium is not installed: the page tests drive the system's Chromium; "
                    "`make test` installs it (scripts/test-deps.sh: apt-get install chromium)",
                    pytrace=False)
    return binary


_started: list[str] = []  # the module whose Playwright is started, if any


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[Browser]:
    """The system's Chromium, headless, for the tests of one module (see above: not longer)."""
    binary = chromium_binary()
    with sync_playwright() as playwright:
        _started.append(request.module.__name__)
        try:
            chromium = playwright.chromium.launch(executable_path=binary, headless=True,
                                                  args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
        finally:
            _started.pop()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """An async test while Playwright is started fails with why, not in pytest-asyncio."""
    if _started and inspect.iscoroutinefunction(getattr(item, "obj", None)):
        pytest.fail(f"{item.nodeid}: an async test cannot run while Playwright's sync API is "
                    f"started (by {_started[-1]}): keep async tests out of modules that use the "
                    "browser", pytrace=False)


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A new page in a context of its own (empty localStorage), closed after the test."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_S * 1000)
    tab = context.new_page()
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console.error: {message.text}")

    tab.on("console", console)
    tab.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    try:
        yield tab
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            path = screenshot(tab, request.node.name)
            print(f"the page at the failure: {path}")  # shown with the failure's report
            print("\n".join(errors) or "no errors on the page's console")
    finally:
        context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """The test's outcome on its item (rep_call), for the page fixture's teardown."""
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


def send_message(page: Page, text: str) -> None:
    """Type `text` into the page's composer and send it, as a person would."""
    page.fill("#prompt", text)
    page.click("#send")


def wait_for(page: Page, expression: str, timeout_s: float = TIMEOUT_S) -> Any:
    """The first truthy value of a JavaScript expression (an exception counts as false; a
    promise is awaited). Polled with evaluate(): Playwright's wait_for_function compiles its
    predicate with eval, which the page's Content-Security-Policy forbids."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = page.evaluate(f"async () => {{ try {{ return await ({expression}); }} "
                              "catch (e) { return null; } }")
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for: {expression}")
        page.wait_for_timeout(50)


def wait_for_reply(page: Page, timeout_s: float = TIMEOUT_S) -> None:
    """Until the last reply has ended (its stats show, it no longer streams) and Stop is Send
    again."""
    wait_for(page, "(() => { const row = [...document.querySelectorAll('.row.assistant')].at(-1);"
                   " return row && !row.querySelector('.msg.streaming')"
                   " && row.querySelector('.stats:not(.waiting)')"
                   " && document.querySelector('#send').textContent.trim() === 'Send'; })()",
             timeout_s)


def screenshot(page: Page, name: str) -> Path:
    """The whole page as tests/artifacts/<name>.png (not committed)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
