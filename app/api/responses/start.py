"""How a response starts, one path for every transport: a request (a POST body, or a WebSocket's
`response.create`) becomes its chat completion (admission, limits, tools, structured output,
the `previous_response_id` chain) and its run, whose events are objects until the transport
encodes them. `detach` runs it detached (app/replies/detached.py), its events in a reply log
that any replica can follow: a background response, or one started over the WebSocket."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from app.api.http.state import Services
from app.api.openai.format import Shape, chunks
from app.api.openai.reasoning import reasoning_of
from app.api.openai.tool_parser import auto_reader
from app.api.responses.events import Event, ResponseBuilder, new_response_id
from app.api.responses.in_conversation import before as history_of
from app.api.responses.in_conversation import recorder
from app.api.responses.schemas import ResponsesRequest, renamed
from app.completions import Caller
from app.errors import InvalidRequest
from app.responses.run import ResponseRun
from app.streams import ReplyLog


@dataclass
class Started:
    run: ResponseRun
    events: AsyncIterator[Event]
    release: Callable[[], Awaitable[None]]  # its place in the engine's queue, given back

    @property
    def builder(self) -> ResponseBuilder:
        return self.run.builder  # type: ignore[return-value]


async def start(svc: Services, req: ResponsesRequest, context: dict[str, Any], *,
                owner: str | None, user: str, accepted_at: float,
                detached: bool = False) -> Started:
    """The response's chat completion admitted and its run built; nothing sent yet. A
    `detached` run (background, or WebSocket) is stored while it runs and ends cancelled when
    stopped."""
    model = svc.models.resolve(req.model)
    before = await history_of(svc, req, owner)  # the chain's, or the conversation's
    chat = req.chat(before, context)
    response_id = new_response_id()
    caller = Caller(response_id, accepted_at, owner, user)
    try:
        params = replace(chat.generation_params(), lora=svc.models.lora(model))
        completion = await svc.completions.chat(chat.turns(), params, chat.requested_max_tokens,
                                                caller, tools=chat.template_tools())
    except InvalidRequest as exc:  # what the engine's checks found, by this API's names
        raise renamed(exc) from None
    assert chat.tool_choice is not None  # resolved when validated
    builder = ResponseBuilder(response_id, req, model, chat.tool_choice)
    run = ResponseRun(builder, svc.records, owner=owner, store=req.store,
                      background=req.background or detached,
                      conversation=[*before, *req.new_messages()],
                      then=recorder(svc, req, owner))
    shape = Shape(response_id, int(time.time()), model, True, False, 0,
                  tools=chat.tool_calls(lambda: auto_reader(svc, chat, model)),
                  reasoning=reasoning_of(svc, completion))
    return Started(run, run.events(chunks(completion, shape, include_usage=True)),
                   completion.release)


async def detach(svc: Services, started: Started, owner: str | None) -> ReplyLog:
    """Run it detached, stored first (queued, or in progress): a GET right after finds it."""
    try:
        await started.run.save()
        return await svc.detached.start(started.builder.response["id"], owner, started.events,
                                        started.release, background=True)
    except BaseException:  # never started (a store error, a socket gone): its place goes back
        await started.release()
        raise
