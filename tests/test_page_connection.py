"""The page's connection (static/connection.js, static/turn.js): replies over the WebSocket,
SSE where a WebSocket cannot connect, and a reply resumed, never duplicated, after a reload or
a lost network. Headless Chromium against the scripted engine in a real server process."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, Request

from tests.browser import send_message, wait_for, wait_for_reply
from tests.tcp_proxy import TcpProxy
from tests.test_server import scripted_server, stop
from tests.waiting import until_sync

# 80 distinct tokens, 50 ms apart: a reply of 4 s whose every token is told apart from the others,
# so a duplicated or missing piece shows in the text.
TOKENS = [f"t{i} " for i in range(80)]
REPLY = "".join(TOKENS).strip()
BREAK_WEBSOCKET = "window.WebSocket = class { constructor() { throw new Error('blocked'); } };"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    process, base = scripted_server("30", env={"SCRIPTED_REPLY": json.dumps(TOKENS),
                                               "SCRIPTED_DELAY_S": "0.05"})
    yield base
    stop(process)


def assistant_text(page: Page) -> str:
    return str(page.evaluate("[...document.querySelectorAll('.msg.assistant')].at(-1).textContent")).strip()


def stored_reply(url: str, page: Page) -> dict[str, object]:
    sid = page.evaluate("localStorage.getItem('streamchat.session')")
    return dict(httpx.get(f"{url}/v1/sessions/{sid}").json()["messages"][-1])


def message_posts(page: Page) -> list[Request]:
    posts: list[Request] = []
    page.on("request", lambda r: posts.append(r)
            if r.method == "POST" and r.url.endswith("/messages") else None)
    return posts


def test_replies_stream_over_the_websocket(page: Page, url: str) -> None:
    posts = message_posts(page)
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(url + "/")
    wait_for(page, "document.querySelector('#connection').dataset.state === 'connected'")
    send_message(page, "Hello")
    wait_for_reply(page)
    assert assistant_text(page) == REPLY
    assert posts == []  # the turn went over the socket, not over HTTP
    assert len(sockets) == 1 and sockets[0].endswith("/ws")
    assert page.inner_text("#connection") == "Connected"


def test_the_page_falls_back_to_sse_when_the_websocket_cannot_connect(page: Page, url: str) -> None:
    posts = message_posts(page)
    page.add_init_script(BREAK_WEBSOCKET)
    page.goto(url + "/")
    send_message(page, "Hello")
    wait_for_reply(page)
    assert assistant_text(page) == REPLY
    assert len(posts) == 1 and posts[0].headers["accept"] == "text/event-stream"


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_a_reload_mid_reply_resumes_it_without_duplication(page: Page, url: str, transport: str) -> None:
    page.goto(f"{url}/?transport={transport}")
    send_message(page, "Hello")
    wait_for(page, "document.querySelector('.msg.assistant')?.textContent.includes('t3 ')")
    page.reload()
    # Still streaming after the reload: it resumed the reply, it did not just show the stored one.
    partial = wait_for(page, "document.querySelector('.msg.assistant.streaming')?.textContent")
    assert partial.strip() != REPLY
    wait_for_reply(page)
    assert assistant_text(page) == REPLY
    stored = stored_reply(url, page)
    assert stored["status"] == "done" and str(stored["content"]).strip() == REPLY
    assert page.locator(".msg.assistant").count() == 1


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_a_lost_network_mid_reply_reconnects_and_resumes(page: Page, url: str, transport: str) -> None:
    # The page reaches the server through a proxy that drops every connection, as a lost
    # network or a phone put to sleep does, and refuses new ones for a while.
    proxy = TcpProxy(int(url.rsplit(":", 1)[1]))
    try:
        page.goto(f"{proxy.url}/?transport={transport}")
        send_message(page, "Hello")
        wait_for(page, "document.querySelector('.msg.assistant')?.textContent.includes('t3 ')")
        proxy.down()
        wait_for(page, "document.querySelector('#connection').dataset.state === 'reconnecting'")
        assert page.inner_text("#connection .label") == "Reconnecting…"
        until_sync(lambda: proxy.refused >= 2, timeout_s=10)  # a few refused tries
        proxy.up()
        wait_for_reply(page)
        assert assistant_text(page) == REPLY
        assert page.inner_text("#connection .label") == "Connected"
        stored = stored_reply(url, page)
        assert stored["status"] == "done" and str(stored["content"]).strip() == REPLY
    finally:
        proxy.close()


def test_the_header_says_offline_when_the_browser_is(page: Page, url: str) -> None:
    page.goto(url + "/")
    wait_for(page, "document.querySelector('#connection').dataset.state === 'connected'")
    page.context.set_offline(True)
    wait_for(page, "document.querySelector('#connection').dataset.state === 'offline'")
    assert page.inner_text("#connection .label") == "Offline"
    page.context.set_offline(False)
    wait_for(page, "document.querySelector('#connection').dataset.state === 'connected'")
