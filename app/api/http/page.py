"""The chat page's files (`/`, `/docs`, `/static/...`), served with the page's headers."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import request_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).resolve().parents[3] / "static"


# The page runs only its own files: no inline script (an injected <script> or on* handler
# does nothing), nothing fetched from elsewhere, never framed, no referrer to the links a reply
# contains. Only the page: API responses are JSON and streams, never rendered.
PAGE_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
     b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class PageFiles:
    """The page's files (`/`, `/docs` and `/static/...`), with the page's headers. They are small:
    served whole. Starlette's file responses answer a bad `Range` header in plain text, outside
    the contract's error shape; ignoring it answers 200."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"range", b"if-range")]

        async def send_with_page_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *PAGE_HEADERS]}
            await send(message)

        await self.app({**scope, "headers": headers}, receive, send_with_page_headers)


def page(name: str) -> PageFiles:
    """A page (a file of static/) at a route of its own."""

    async def serve(request: Request) -> Response:
        return FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-cache"})
    return PageFiles(request_response(serve))
