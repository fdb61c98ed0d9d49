"""/docs in headless Chromium: Swagger UI, vendored, renders every operation of /openapi.json
under the page's Content-Security-Policy (a refused script or style is a console error), and
"Try it out" calls the service (the scripted engine in a real server process)."""

from __future__ import annotations

import httpx
from playwright.sync_api import ConsoleMessage, Page

from tests.browser import wait_for
from tests.test_server import scripted_server, stop


def test_docs_shows_every_operation_and_runs_one(page: Page) -> None:
    process, url = scripted_server("30")
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", console)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    try:
        doc = httpx.get(url + "/openapi.json").json()
        operations = sum(len(ops) for ops in doc["paths"].values())
        page.goto(url + "/docs")
        wait_for(page, f"document.querySelectorAll('.opblock').length === {operations}")
        # Try it out: GET /v1/health, answered by the service.
        block = page.locator("#operations-operations-get_v1_health")
        block.locator(".opblock-summary").click()
        block.get_by_role("button", name="Try it out").click()
        block.get_by_role("button", name="Execute").click()
        # The example says "status": "string"; the live answer, "ok".
        wait_for(page, "document.querySelector('#operations-operations-get_v1_health')"
                       ".innerText.includes('\"status\": \"ok\"')")
        assert errors == []  # a CSP refusal would be one
        assert all(r.startswith(url) or r.startswith("data:") for r in requests), requests
    finally:
        stop(process)
