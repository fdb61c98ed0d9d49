"""A response in a conversation (`conversation` on `POST /v1/responses`, or a WebSocket's
`response.create`): the conversation's items come before its input, and once it has completed
its input and output items are appended to the conversation, which is a session
(app/conversations/)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from app.api.http.state import Services
from app.api.responses.schemas import Messages, ResponsesRequest
from app.conversations.service import Conversations
from app.responses.stored import history

Then = Callable[[dict[str, Any]], Awaitable[None]]


async def before(svc: Services, req: ResponsesRequest, owner: str | None) -> Messages:
    """What the response goes on from: its conversation's items, or its chain's."""
    if req.conversation is None:
        return await history(svc.records, req.previous_response_id, owner)
    return await Conversations(svc.chat).history(req.conversation, owner)


def recorder(svc: Services, req: ResponsesRequest, owner: str | None) -> Then | None:
    """What appends the ended response's items to its conversation, if it has one."""
    if req.conversation is None:
        return None
    conversation = req.conversation
    inputs = [item.model_dump(exclude_none=True) for item in req.input]

    async def record(response: dict[str, Any]) -> None:
        await Conversations(svc.chat).record(conversation, owner, inputs, response)

    return record
