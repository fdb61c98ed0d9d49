"""The server's own `send`, for the body of a stream.

Every middleware in the stack (RequestLog, Starlette's error and exception middleware) wraps
`send`, and each wrapper is a coroutine call per message, though they only act on a response's
start (its status and headers) or a WebSocket's accept and close. A stream sends its start
through the wrapped `send` and then its chunks and frames straight to the server's: on the
transport ceiling's benchmark (benchmarks/transport.py) the three wrappers cost about 3 us of
the ~55 us the app spent per token event."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

RAW_SEND = "streamchat.raw_send"


class StreamchatApp(Starlette):
    """Starlette that keeps the server's `send` in the scope for `body_send`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[RAW_SEND] = send
        await super().__call__(scope, receive, send)


def body_send(scope: Scope, send: Send) -> Send:
    """Where a stream's body goes once its start has gone through `send`."""
    return scope.get(RAW_SEND, send)  # type: ignore[no-any-return]
