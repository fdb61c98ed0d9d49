"""Authentication on every route and transport, before anything else runs.

When auth is on, every route needs a key or token with the `chat` scope, except `/health`
(and `/v1/health`), `/ready`, the page (`/`, `/static/...`) and the API's description
(`/openapi.json`, `/docs`: what exists, nothing of anyone's, public as on vLLM's server);
`/metrics` needs `admin` unless `metrics_public`, and loading or unloading LoRA adapters needs
`admin`. Credentials come as `Authorization: Bearer ...`; a browser's WebSocket, which cannot
set headers, may offer `bearer.<token>` in `Sec-WebSocket-Protocol` instead. A refused WebSocket
is refused at the handshake, with the same HTTP answer as any other request. The key id (or JWT
subject) becomes the request's owner: sessions belong to it."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.http.errors import count_rejection, refuse
from app.auth import Authenticator
from app.errors import Forbidden, StreamchatError
from app.limits import KeyLimits
from app.logs import request_context

PUBLIC_PATHS = frozenset({"/health", "/v1/health", "/ready", "/", "/openapi.json", "/docs"})
ADMIN_PATHS = frozenset({"/metrics", "/v1/load_lora_adapter", "/v1/unload_lora_adapter"})
BEARER_PROTOCOL = "bearer."


def is_public(path: str, metrics_public: bool) -> bool:
    return path in PUBLIC_PATHS or path.startswith("/static/") or (
        metrics_public and path == "/metrics")


def credentials(scope: Scope) -> str | None:
    """The bearer token: the Authorization header, or a WebSocket's `bearer.` subprotocol."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    for protocol in scope.get("subprotocols", []) if scope["type"] == "websocket" else []:
        if protocol.startswith(BEARER_PROTOCOL):
            return str(protocol[len(BEARER_PROTOCOL):])
    return None


class AuthMiddleware:
    def __init__(self, app: ASGIApp, authenticator: Authenticator | None,
                 limits: KeyLimits | None, *, metrics_public: bool) -> None:
        self.app = app
        self.authenticator = authenticator
        self.limits = limits
        self.metrics_public = metrics_public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.authenticator is None or scope["type"] not in ("http", "websocket")
                or is_public(scope["path"], self.metrics_public)):
            await self.app(scope, receive, send)
            return
        try:
            principal = self.authenticator.authenticate(credentials(scope))
            scope_needed = "admin" if scope["path"] in ADMIN_PATHS else "chat"
            if not principal.can(scope_needed):
                raise Forbidden(f"this key lacks the '{scope_needed}' scope")
            if self.limits is not None:
                await self.limits.admit_request(principal.owner)
        except StreamchatError as exc:
            count_rejection(exc)
            await refuse(scope, send, exc)
            return
        context = request_context.get()
        if context is not None:
            context.key_id = principal.owner
        scope.setdefault("state", {})["owner"] = principal.owner
        await self.app(scope, receive, send)
