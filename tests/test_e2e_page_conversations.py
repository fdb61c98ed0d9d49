"""End to end: conversations are sessions, seen from the chat page (headless Chromium) against the
real service and the real engine. One made through `/v1/conversations`, function call and its
output included, is in the page's sidebar, opened and continued there, and read back as items; one
made on the page is continued with `conversation=` through the `openai` SDK, and the page shows
that turn. Replies are kept short: the page's settings dialog sets the conversation's max
tokens."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import openai
import pytest
from playwright.sync_api import Page

from tests.browser import send_message, wait_for, wait_for_reply
from tests.e2e_server import LiveServer

pytestmark = pytest.mark.e2e
MODEL = "SmolLM2-135M-Instruct"
MAX_TOKENS = 12
ARGUMENTS = json.dumps({"city": "Paris"})
OUTPUT = json.dumps({"temp_c": 18, "sky": "clear"})
ROW_IDS = "[...document.querySelectorAll('#messages > .row')].map(r => r.dataset.id).join()"


@pytest.fixture
def sdk(live_server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=live_server.url + "/v1", api_key="unused",
                       max_retries=0) as client:
        yield client


def short_replies(page: Page) -> None:
    """The open conversation's max tokens and temperature, set as a person does: in its settings."""
    page.click("#open-settings")
    page.fill("#set-max-tokens", str(MAX_TOKENS))
    page.fill("#set-temperature", "0")
    page.click("#settings-form button[type=submit]")
    wait_for(page, "!document.querySelector('#settings').open")


def items(server: LiveServer, cid: str) -> list[dict[str, object]]:
    response = httpx.get(f"{server.url}/v1/conversations/{cid}/items", params={"order": "asc"})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def text(item: dict[str, object]) -> str:
    return str(item["content"][0]["text"])  # type: ignore[index]


def same_words(shown: str | None, raw: str) -> bool:
    """The page's rendering of a reply has its words (Markdown takes only marks away)."""
    words = re.findall(r"[A-Za-z]+", shown or "")
    return bool(words) and set(words) <= set(re.findall(r"[A-Za-z]+", raw))


def test_a_conversation_made_through_the_api_is_opened_and_continued_on_the_page(
        live_server: LiveServer, page: Page) -> None:
    created = httpx.post(f"{live_server.url}/v1/conversations", json={
        "items": [{"type": "message", "role": "user", "content": "What's the weather in Paris?"},
                  {"type": "function_call", "call_id": "call_1", "name": "get_weather",
                   "arguments": ARGUMENTS},
                  {"type": "function_call_output", "call_id": "call_1", "output": OUTPUT}],
        "metadata": {"source": "e2e page"}}).json()
    cid = created["id"]
    assert created["metadata"] == {"source": "e2e page"}
    earlier = items(live_server, cid)

    page.goto(live_server.url + "/")
    entry = f"#conversations li[data-id='{cid}'] .open"
    wait_for(page, f"document.querySelector(\"{entry}\")")  # the sidebar lists it
    page.click(entry)
    wait_for(page, f"{ROW_IDS} === {json.dumps(','.join(str(i['id']) for i in earlier))}")
    assert page.inner_text(".row.user .msg") == "What's the weather in Paris?"
    assert page.text_content(".row.call .msg") == f"called get_weather({ARGUMENTS})"
    assert page.text_content(".row.tool .tool-id") == "call_1"
    assert page.text_content(".row.tool .tool-body") == OUTPUT

    short_replies(page)
    send_message(page, "Thanks. Should I take an umbrella?")
    wait_for_reply(page)
    after = items(live_server, cid)
    assert after[:3] == earlier
    assert [(i["type"], i.get("role"), i["status"]) for i in after[3:]] == [
        ("message", "user", "completed"), ("message", "assistant", "completed")]
    assert text(after[3]) == "Thanks. Should I take an umbrella?" and text(after[4]).strip()
    # The page's rows are those items, in order: its reply is the one stored.
    wait_for(page, f"{ROW_IDS} === {json.dumps(','.join(str(i['id']) for i in after))}")
    assert same_words(page.text_content(".row.assistant:last-child .msg"), text(after[4]))


def test_a_conversation_made_on_the_page_is_continued_through_the_sdk(
        live_server: LiveServer, page: Page, sdk: openai.OpenAI) -> None:
    page.goto(live_server.url + "/")
    wait_for(page, "document.querySelector('#connection').dataset.state === 'connected'")
    short_replies(page)
    send_message(page, "Name a colour.")
    wait_for_reply(page)
    sid = str(page.evaluate("localStorage.getItem('streamchat.session')"))

    # The conv_ alias names the same conversation.
    response = sdk.responses.create(model=MODEL, conversation="conv_" + sid.split("_", 1)[1],
                                    input="And a fruit?", max_output_tokens=MAX_TOKENS,
                                    temperature=0)
    # "incomplete" when it used all its tokens, as it may in a few.
    assert response.output_text and response.status in ("completed", "incomplete")
    stored = items(live_server, sid)
    assert [(i["type"], i.get("role"), i["status"]) for i in stored] == [
        ("message", "user", "completed"), ("message", "assistant", "completed"),
        ("message", "user", "completed"), ("message", "assistant", response.status)]
    assert text(stored[2]) == "And a fruit?"
    assert stored[-1]["id"] == response.output[-1].id

    page.reload()  # the page shows the SDK's turn after its own
    wait_for(page, f"{ROW_IDS} === {json.dumps(','.join(str(i['id']) for i in stored))}")
    assert page.locator(".row.user .msg").all_text_contents() == ["Name a colour.", "And a fruit?"]
    assert same_words(page.text_content(".row.assistant:last-child .msg"), response.output_text)
    # Still the page's conversation: named after its first message.
    assert page.inner_text("#chat-title") == "Name a colour."
