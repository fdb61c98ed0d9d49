"""OpenAI's Conversations API over HTTP (docs/API.md): conversations, which are sessions, and
their items. The mapping onto sessions is app/conversations/'s."""

from app.api.conversations import conversations

routes = conversations.routes
