"""What a web page the person happens to visit may do with the service: the Host and Origin rules.

- **Host (DNS rebinding).** A site can rebind its own name to 127.0.0.1; its page then talks to
  the local service as its own origin, and CORS no longer stands in the way. Its requests still
  say the site's name in `Host`. So a replica serves only the hosts `STREAMCHAT_ALLOWED_HOSTS`
  lists: by default, listening on loopback, the loopback names and addresses (Ollama's fix for
  CVE-2024-28224); listening elsewhere, any. Another Host is a 421, no Host a 400.
- **Origin (other sites' pages).** A browser sends `Origin` with every cross-site request and
  every WebSocket handshake, and applies no CORS to a WebSocket at all. A request whose Origin
  is neither the page's own (the same host and port as `Host`) nor one of
  `STREAMCHAT_CORS_ORIGINS` is refused with 403, before auth or any work: WebSockets at the
  handshake, and also the "simple" posts (form or multipart bodies) a page may send without a
  preflight. Clients that send no `Origin` (SDKs, curl, the websockets library) are not pages.

Runs once per request or handshake, never per event. CORS headers themselves are Starlette's
`CORSMiddleware` (`cors_middleware`), inside this guard, so it only sees allowed origins."""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.http.errors import count_rejection, refuse
from app.errors import BadHost, HostNotAllowed, OriginNotAllowed, StreamchatError
from app.host_names import DEFAULT_PORTS, matches, split_host, split_origin
from app.settings import Settings

# What a page on an allowed origin may send and read (docs/API.md, "Browsers and other sites").
CORS_METHODS = ("GET", "POST", "DELETE")
CORS_EXPOSED = ("X-Request-ID", "X-Stream-ID", "Retry-After")
CORS_MAX_AGE_S = 600


def cors_middleware(settings: Settings) -> list[Middleware]:
    """Starlette's CORS, for the origins listed; none by default. Any request header is allowed
    to a listed origin (Authorization, Content-Type, Last-Event-ID, X-Request-ID,
    X-Stream-Resumable, and the OpenAI SDKs' own x-stainless-* ones): the origin is what is
    trusted, as vLLM's --allowed-headers default. A stream's body goes past it (raw_send.py)."""
    if not settings.cors_origins:
        return []
    return [Middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                       allow_methods=list(CORS_METHODS), allow_headers=["*"],
                       expose_headers=list(CORS_EXPOSED), max_age=CORS_MAX_AGE_S)]


class BrowserGuard:
    def __init__(self, app: ASGIApp, hosts: tuple[str, ...] | None,
                 origins: tuple[str, ...]) -> None:
        self.app = app
        self.hosts = hosts  # None: any host
        self.any_origin = "*" in origins
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = origin = None
            for name, value in scope["headers"]:
                if name == b"host":
                    host = value.decode("latin-1")
                elif name == b"origin":
                    origin = value.decode("latin-1")
            try:
                self.check(host, origin)
            except StreamchatError as exc:
                count_rejection(exc)
                await refuse(scope, send, exc)
                return
        await self.app(scope, receive, send)

    def check(self, host: str | None, origin: str | None) -> None:
        """Raise the refusal for this Host and Origin, if any."""
        if host is None:
            if self.hosts is not None or origin is not None:
                raise BadHost("the request has no Host header")
            return
        try:
            name, port = split_host(host)
        except ValueError:
            raise BadHost(f"bad Host header {host!r}") from None
        if self.hosts is not None and not any(matches(p, name, port) for p in self.hosts):
            raise HostNotAllowed(
                f"this server does not serve the host {name!r}; add it to "
                "STREAMCHAT_ALLOWED_HOSTS to serve it")
        if origin is None or self.any_origin or origin in self.origins:
            return
        if not _same_origin(origin, name, port):
            raise OriginNotAllowed(f"pages from {origin} may not use this server; add the "
                                   "origin to STREAMCHAT_CORS_ORIGINS to let them")


def _same_origin(origin: str, host_name: str, host_port: int | None) -> bool:
    """Whether `Origin` names the host and port the request was sent to (the page's own)."""
    try:
        scheme, name, port = split_origin(origin)
    except ValueError:
        return False  # `null` (a sandboxed frame, a file://) is never the page's own
    if host_port == DEFAULT_PORTS.get(scheme):
        host_port = None
    return (name, port) == (host_name, host_port)
