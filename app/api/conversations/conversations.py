"""HTTP routes of OpenAI's Conversations API (docs/API.md): `/v1/conversations` and its items,
as the openai SDK's `client.conversations` calls them."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.conversations.schemas import (
    Conversation,
    ConversationDeleted,
    ConversationPatch,
    NewConversation,
    NewItems,
    dumped,
)
from app.api.http.body import parse_body, validation_context
from app.api.http.errors import json_response
from app.api.http.query import Page
from app.api.http.state import owner, services
from app.conversations.service import Conversations
from app.errors import InvalidRequest
from app.finetune.store import page
from app.sessions.models import Session


def _conversations(request: Request) -> Conversations:
    return Conversations(services(request).chat)


def _object(session: Session) -> dict[str, Any]:
    return Conversation(id=session.id, created_at=int(session.created),
                        metadata=session.metadata).model_dump()


def _list(items: list[dict[str, Any]], has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": items, "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None, "has_more": has_more}


async def create(request: Request) -> Response:
    settings = services(request).settings
    body = await parse_body(request, NewConversation, settings.max_body_bytes, optional=True,
                            context=validation_context(settings))
    session = await _conversations(request).create(dumped(body.items or []), body.metadata or {},
                                                   owner(request))
    return json_response(_object(session))


async def retrieve(request: Request) -> Response:
    return json_response(_object(await _conversations(request).get(
        request.path_params["conversation_id"], owner(request))))


async def update(request: Request) -> Response:
    settings = services(request).settings
    body = await parse_body(request, ConversationPatch, settings.max_body_bytes,
                            context=validation_context(settings))
    return json_response(_object(await _conversations(request).update(
        request.path_params["conversation_id"], body.metadata or {}, owner(request))))


async def delete(request: Request) -> Response:
    deleted = await _conversations(request).delete(request.path_params["conversation_id"],
                                                   owner(request))
    return json_response(ConversationDeleted(id=deleted).model_dump())


async def list_items(request: Request) -> Response:
    order = request.query_params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest(f"'order' must be asc or desc, got {order!r}", param="order")
    asked = Page.of(request)  # `include`: nothing it names is served, so nothing to add
    items = await _conversations(request).items(request.path_params["conversation_id"],
                                                owner(request))
    chosen, has_more = page(items if order == "asc" else items[::-1], asked.after, asked.limit)
    return json_response(_list(chosen, has_more))


async def create_items(request: Request) -> Response:
    settings = services(request).settings
    body = await parse_body(request, NewItems, settings.max_body_bytes,
                            context=validation_context(settings))
    return json_response(_list(await _conversations(request).add(
        request.path_params["conversation_id"], dumped(body.items), owner(request))))


async def retrieve_item(request: Request) -> Response:
    return json_response(await _conversations(request).item(
        request.path_params["conversation_id"], request.path_params["item_id"], owner(request)))


async def delete_item(request: Request) -> Response:
    """OpenAI's answer: the conversation, without the item."""
    return json_response(_object(await _conversations(request).remove(
        request.path_params["conversation_id"], request.path_params["item_id"], owner(request))))


routes = [
    Route("/v1/conversations", create, methods=["POST"]),
    Route("/v1/conversations/{conversation_id}", retrieve, methods=["GET"]),
    Route("/v1/conversations/{conversation_id}", update, methods=["POST"]),
    Route("/v1/conversations/{conversation_id}", delete, methods=["DELETE"]),
    Route("/v1/conversations/{conversation_id}/items", list_items, methods=["GET"]),
    Route("/v1/conversations/{conversation_id}/items", create_items, methods=["POST"]),
    Route("/v1/conversations/{conversation_id}/items/{item_id}", retrieve_item,
          methods=["GET"]),
    Route("/v1/conversations/{conversation_id}/items/{item_id}", delete_item,
          methods=["DELETE"]),
]
