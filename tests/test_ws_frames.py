"""A WebSocket's frames both ways (app/api/http/ws_frames.py), for the session's socket and the
Responses socket: received as bytes, none over the limit; sent one at a time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.api.http.raw_send import RAW_SEND
from app.api.http.ws_frames import FrameSender, receive_frame
from app.metrics import REJECTED


def socket(raw_send: Any) -> WebSocket:
    async def wrapped_send(message: Any) -> None:
        raise AssertionError("frames after the accept skip the middlewares' send")

    async def receive() -> Any:
        raise AssertionError("a sender does not receive")

    return WebSocket({"type": "websocket", RAW_SEND: raw_send}, receive, wrapped_send)


def accepted(messages: list[dict[str, Any]], sent: list[Any]) -> WebSocket:
    """A socket that has been accepted, whose client sends `messages`."""
    incoming = iter([{"type": "websocket.connect"}, *messages])

    async def receive() -> Any:
        return next(incoming)

    async def send(message: Any) -> None:
        sent.append(message)

    return WebSocket({"type": "websocket"}, receive, send)


async def test_frames_are_received_as_bytes_text_or_binary_until_the_client_leaves() -> None:
    sent: list[Any] = []
    websocket = accepted([{"type": "websocket.receive", "text": '{"a":"\u00e9"}'},
                          {"type": "websocket.receive", "bytes": b'{"b":1}'},
                          {"type": "websocket.receive", "bytes": None, "text": None},
                          {"type": "websocket.disconnect", "code": 1000}], sent)
    await websocket.accept()
    frames = [await receive_frame(websocket, 100, "frame") for _ in range(4)]
    assert frames == ['{"a":"\u00e9"}'.encode(), b'{"b":1}', b"", None]


async def test_a_frame_over_the_limit_closes_the_socket_1009() -> None:
    sent: list[Any] = []
    websocket = accepted([{"type": "websocket.receive", "text": "x" * 10},
                          {"type": "websocket.receive", "text": "é" * 6}], sent)
    await websocket.accept()
    before = REJECTED.labels("too_large")._value.get()
    assert await receive_frame(websocket, 10, "event") == b"x" * 10  # at the limit: taken
    assert await receive_frame(websocket, 10, "event") is None  # 12 bytes, 6 characters
    assert sent[-1] == {"type": "websocket.close", "code": 1009, "reason": "event too big"}
    assert REJECTED.labels("too_large")._value.get() == before + 1


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
