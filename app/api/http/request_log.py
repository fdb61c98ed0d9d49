"""The request id and the one log line of every HTTP request and WebSocket connection.

The id is the client's `X-Request-ID` when it is a sane token, else a new one; it is sent back
as `X-Request-ID` and carried by every log line the request causes (app/logs.py)."""

from __future__ import annotations

import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.ids import new_id
from app.logs import RequestContext, elapsed_ms, log_line, request_context

REQUEST_ID_HEADER = b"x-request-id"
_SANE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _client_id(scope) or new_id("", 16)
        token = request_context.set(RequestContext(request_id))
        started, status = time.monotonic(), 0
        header = (REQUEST_ID_HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind in ("http.response.start", "websocket.accept",
                        "websocket.http.response.start"):
                message = {**message, "headers": [*message.get("headers", []), header]}
                status = message.get("status", 101)
            elif kind == "websocket.close":
                status = status or message.get("code", 1000)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            client = scope.get("client")
            log_line("request" if scope["type"] == "http" else "websocket",
                     method=scope.get("method", "GET"), path=scope["path"], status=status,
                     duration_ms=elapsed_ms(started), client=client[0] if client else None)
            request_context.reset(token)


def _client_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _SANE_ID.fullmatch(value):
            return str(value.decode())
    return None
