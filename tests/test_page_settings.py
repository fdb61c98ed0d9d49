"""A conversation's settings on the page (static/settings.js): model, system prompt, temperature
and max tokens, kept by the server on the session and used by its replies. Headless Chromium
against the scripted engine in a real server process."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page

from tests.browser import send_message, wait_for, wait_for_reply
from tests.test_server import scripted_server, stop


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    adapter = tmp_path_factory.mktemp("adapter")
    (adapter / "adapter_config.json").write_text('{"r": 8, "peft_type": "LORA"}')
    process, base = scripted_server("30", env={"STREAMCHAT_MODEL_ALIASES": "house-model",
                                               "STREAMCHAT_LORA_MODULES": f"my-tuned={adapter}"})
    yield base
    stop(process)


def session(url: str, page: Page) -> dict[str, object]:
    sid = page.evaluate("localStorage.getItem('streamchat.session')")
    return dict(httpx.get(f"{url}/v1/sessions/{sid}").json())


def test_settings_are_kept_on_the_session_and_used_by_its_replies(page: Page, url: str) -> None:
    page.goto(url + "/")
    wait_for(page, "document.querySelector('#model').textContent === 'scripted'")
    page.click("#open-settings")
    assert page.is_visible("#settings")
    options = page.locator("#set-model option").all_inner_texts()
    # What /v1/models lists; an adapter (a fine-tuned model) is marked.
    assert options == ["scripted (base)", "house-model", "my-tuned (fine-tuned)"]
    page.select_option("#set-model", "house-model")
    page.fill("#set-system", "Answer in one word.")
    page.fill("#set-temperature", "0.2")
    page.fill("#set-max-tokens", "50")
    page.click("#settings button[type=submit]")
    wait_for(page, "!document.querySelector('#settings').open")
    stored = session(url, page)
    assert stored["system"] == "Answer in one word."
    assert stored["params"] == {"temperature": 0.2, "max_tokens": 50}
    assert stored["model"] == "house-model"
    assert page.inner_text("#model") == "house-model"

    send_message(page, "Hello")
    wait_for_reply(page)
    reply = session(url, page)["messages"][-1]  # type: ignore[index]
    assert reply["model"] == "house-model"
    assert reply["usage"]["completion_tokens"] == 50  # max_tokens took effect

    page.reload()  # the dialog shows what the server keeps
    page.click("#open-settings")
    assert page.input_value("#set-system") == "Answer in one word."
    assert page.input_value("#set-temperature") == "0.2"
    assert page.input_value("#set-model") == "house-model"
    page.keyboard.press("Escape")
    assert not page.is_visible("#settings")


def test_a_value_out_of_range_is_not_saved(page: Page, url: str) -> None:
    page.goto(url + "/")
    wait_for(page, "document.querySelector('#connection').dataset.state === 'connected'")
    page.click("#open-settings")
    page.fill("#set-temperature", "5")
    page.click("#settings button[type=submit]")
    assert page.evaluate("document.querySelector('#settings').open")  # still open
    assert page.evaluate("document.querySelector('#set-temperature').validity.rangeOverflow")
    assert session(url, page)["params"] == {}
