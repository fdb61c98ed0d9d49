"""OpenAI's conversations, which are sessions: one store, one history, one prefix cache.

A conversation's id is its session's (`ses_...`); `conv_...` with the same hex names the same
one, for clients that expect OpenAI's prefix. Owners, the per-key session quota, replicas and
Redis are the sessions' own (app/chat.py, app/sessions/). Items are added or removed only while
no reply is being written in the session (a 409 otherwise), so that a reply's place in the
history is never moved under it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.chat import ChatService
from app.conversations.items import (
    Item,
    Messages,
    all_items,
    chat_messages,
    holder,
    message_of,
    reasoning_id,
)
from app.errors import NotFound, ReplyInFlight, SessionNotFound
from app.sessions.models import Session

ALIAS = "conv_"
APPENDED = frozenset({"completed", "incomplete"})  # a response whose items join its conversation


def session_id(conversation_id: str) -> str:
    """The session a conversation id names (`conv_<hex>` is `ses_<hex>`)."""
    return "ses_" + conversation_id[len(ALIAS):] if conversation_id.startswith(ALIAS) \
        else conversation_id


@dataclass(frozen=True)
class Conversations:
    chat: ChatService

    async def create(self, items: list[Item], metadata: dict[str, str],
                     owner: str | None) -> Session:
        session = await self.chat.create_session(owner=owner)
        if metadata:
            await self.chat.store.update_meta(session.id, {"metadata": metadata})
        if items:
            await self.chat.store.append(session.id, [message_of(item) for item in items])
        return await self.get(session.id, owner)

    async def get(self, conversation_id: str, owner: str | None,
                  param: str = "conversation_id") -> Session:
        try:
            return await self.chat.get_session(session_id(conversation_id), owner)
        except SessionNotFound:
            raise NotFound(f"conversation {conversation_id} not found (unknown, expired, "
                           "deleted, or not yours)", param=param,
                           code="conversation_not_found") from None

    async def update(self, conversation_id: str, metadata: dict[str, str],
                     owner: str | None) -> Session:
        session = await self.get(conversation_id, owner)
        await self.chat.store.update_meta(session.id, {"metadata": metadata})
        return await self.get(session.id, owner)

    async def delete(self, conversation_id: str, owner: str | None) -> str:
        session = await self.get(conversation_id, owner)
        await self.chat.delete_session(session.id, owner)
        return session.id

    async def items(self, conversation_id: str, owner: str | None) -> list[Item]:
        return all_items((await self.get(conversation_id, owner)).messages)

    async def item(self, conversation_id: str, item_id: str, owner: str | None) -> Item:
        for item in await self.items(conversation_id, owner):
            if item["id"] == item_id:
                return item
        raise _no_item(conversation_id, item_id)

    async def add(self, conversation_id: str, items: list[Item], owner: str | None,
                  *, keep_ids: bool = False) -> list[Item]:
        """Append `items` at the end; the items as stored (their ids)."""
        session = await self._idle(conversation_id, owner)
        messages = [message_of(item, keep_id=keep_ids) for item in items]
        await self.chat.store.append(session.id, messages)
        return all_items(messages)

    async def remove(self, conversation_id: str, item_id: str, owner: str | None) -> Session:
        """Remove one item; the item of a reply's text takes its reasoning with it."""
        session = await self._idle(conversation_id, owner)
        message = holder(session.messages, item_id)
        if message is None:
            raise _no_item(conversation_id, item_id)
        later = session.messages[session.messages.index(message) + 1:]
        if message.reasoning is not None and item_id == reasoning_id(message.id) \
                and item_id != message.id:
            message.reasoning = None
            await self.chat.store.update_message(session.id, message)
        else:
            # Removes it and what follows, then puts what follows back, at once (Lua on Redis).
            await self.chat.store.replace_from(session.id, message.id, later)
        return await self.get(session.id, owner)

    async def _idle(self, conversation_id: str, owner: str | None,
                    param: str = "conversation_id") -> Session:
        session = await self.get(conversation_id, owner, param)
        running = await self.chat.reply_in_flight(session.id)
        if running is not None:
            raise ReplyInFlight(f"conversation {conversation_id} has a reply in flight "
                                f"({running}); its items change once it ends",
                                param=param)
        return session

    # -- a response in a conversation (POST /v1/responses with `conversation`) -------------

    async def history(self, conversation_id: str, owner: str | None) -> Messages:
        """What a response in the conversation goes on from, as chat messages."""
        session = await self._idle(conversation_id, owner, param="conversation")
        return chat_messages(session.system, session.messages)

    async def record(self, conversation_id: str, owner: str | None, inputs: list[Item],
                     response: dict[str, Any]) -> None:
        """A finished response's input and output items, appended to its conversation
        (OpenAI's rule: once it completes); one deleted meanwhile keeps nothing."""
        if response["status"] not in APPENDED:
            return
        try:
            session = await self.get(conversation_id, owner)
            await self.chat.store.append(session.id, [
                *(message_of(item) for item in inputs),
                *(message_of(item, keep_id=True) for item in response["output"])])
        except (NotFound, SessionNotFound):
            return


def _no_item(conversation_id: str, item_id: str) -> NotFound:
    return NotFound(f"item {item_id} not found in conversation {conversation_id}",
                    param="item_id", code="item_not_found")
