"""The sessions API (docs/API.md): sessions and their messages over HTTP, a reply's SSE stream,
and the session's WebSocket."""

from app.api.sessions import sessions, ws

routes = [*sessions.routes, *ws.routes]
