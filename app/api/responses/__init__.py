"""OpenAI's Responses API: the routes (responses.py), the request and how it becomes a chat
completion (schemas.py), the typed events and response object built from its chunks
(events.py), and one response's run and storage (run.py)."""

from app.api.responses import responses

routes = responses.routes
