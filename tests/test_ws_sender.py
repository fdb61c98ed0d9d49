"""One WebSocket's frames, one at a time (app/api/http/ws_sender.py): the session's socket and
the Responses socket both send through it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.api.http.raw_send import RAW_SEND
from app.api.http.ws_sender import FrameSender


def socket(raw_send: Any) -> WebSocket:
    async def wrapped_send(message: Any) -> None:
        raise AssertionError("frames after the accept skip the middlewares' send")

    async def receive() -> Any:
        raise AssertionError("a sender does not receive")

    return WebSocket({"type": "websocket", RAW_SEND: raw_send}, receive, wrapped_send)


async def test_a_frame_is_text_sent_straight_to_the_server() -> None:
    sent: list[Any] = []

    async def raw(message: Any) -> None:
        sent.append(message)

    await FrameSender(socket(raw)).send(b'{"type":"pong","text":"\xc3\xa9"}')
    assert sent == [{"type": "websocket.send", "text": '{"type":"pong","text":"\u00e9"}'}]


async def test_a_frame_to_a_client_that_left_is_a_disconnect() -> None:
    # The server's own send raises OSError (uvicorn's ClientDisconnected) for a client that
    # left; the socket must see the disconnect Starlette's send would raise.
    async def gone(message: Any) -> None:
        raise ConnectionResetError

    with pytest.raises(WebSocketDisconnect) as raised:
        await FrameSender(socket(gone)).send(b'{"type":"pong"}')
    assert raised.value.code == 1006


async def test_sends_from_two_tasks_take_turns_in_the_order_asked() -> None:
    in_flight, release = asyncio.Event(), asyncio.Event()
    sent: list[str] = []
    busy = 0

    async def raw(message: Any) -> None:
        nonlocal busy
        busy += 1
        assert busy == 1, "two sends at once on one socket"
        if not sent:  # the first send is slow (a client reading slowly)
            in_flight.set()
            await release.wait()
        sent.append(message["text"])
        busy -= 1

    sender = FrameSender(socket(raw))
    first = asyncio.create_task(sender.send(b"1"))
    await in_flight.wait()
    others = [asyncio.create_task(sender.send(b"%d" % n)) for n in (2, 3)]
    await asyncio.sleep(0)  # both are waiting their turn now
    assert sent == []
    release.set()
    await asyncio.gather(first, *others)
    assert sent == ["1", "2", "3"]
