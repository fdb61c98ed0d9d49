"""OpenAI's Responses API: the routes (responses.py), the request and how it becomes a chat
completion (schemas.py), the typed events and response object built from its chunks
(events.py), how one starts (start.py), and the WebSocket mode (websocket.py, ws_events.py)."""

from app.api.responses import responses, websocket

routes = [*responses.routes, *websocket.routes]
