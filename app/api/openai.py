"""OpenAI-compatible endpoints: chat completions, completions, models, and the legacy
`/v1/engines/{model}/completions` the seed document's client uses.

Streaming follows OpenAI's chunk format. The first chunk of a choice carries the assistant role
together with the first text: no empty chunk is sent early, so a client's time to first token
is the time to real text. A client that leaves aborts its engine request at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.errors import json_response
from app.api.openai_schemas import OpenAIRequest, parse_chat, parse_completion
from app.api.schemas import read_json_object
from app.api.sse import EventStreamResponse
from app.completions import CompletionService
from app.engine.base import Delta, GenerationParams, TokenLogprob
from app.errors import NotReady, StreamchatError

DONE = b"data: [DONE]\n\n"


def _service(request: Request) -> CompletionService:
    return request.app.state.completions  # type: ignore[no-any-return]


def _defaults(request: Request) -> GenerationParams:
    return GenerationParams(max_tokens=request.app.state.settings.default_max_tokens)


async def chat_completions(request: Request) -> Response:
    settings, engine = request.app.state.settings, request.app.state.engine
    body = await read_json_object(request, settings.max_body_bytes)
    req = parse_chat(body, engine.model_name, settings.model_aliases, settings.max_n,
                     _defaults(request))
    _require_ready(engine.ready)
    prompt_ids = await _service(request).chat_prompt(req.chat)
    return await _respond(request, req, prompt_ids, chat=True)


async def completions(request: Request) -> Response:
    settings, engine = request.app.state.settings, request.app.state.engine
    body = await read_json_object(request, settings.max_body_bytes)
    req = parse_completion(body, engine.model_name, settings.model_aliases, settings.max_n,
                           _defaults(request), model=request.path_params.get("model"))
    _require_ready(engine.ready)
    prompt_ids = await _service(request).text_prompt(req.prompt)
    return await _respond(request, req, prompt_ids, chat=False)


async def models(request: Request) -> Response:
    settings, engine = request.app.state.settings, request.app.state.engine
    created = int(request.app.state.started_at)
    names = [engine.model_name, *settings.model_aliases]
    return json_response({"object": "list", "data": [
        {"id": name, "object": "model", "created": created, "owned_by": "streamchat",
         "root": engine.model_name, "max_model_len": engine.max_model_len} for name in names]})


def _require_ready(ready: bool) -> None:
    if not ready:
        raise NotReady("the engine is not ready yet")


async def _respond(request: Request, req: OpenAIRequest, prompt_ids: list[int],
                   chat: bool) -> Response:
    service = _service(request)
    params = service.fit(prompt_ids, req.params, req.max_tokens)
    request_id = ("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(12)
    shape = Shape(request_id, int(time.time()), req.model, chat, req.logprobs,
                  top_k=params.logprobs or 0)
    deltas = service.stream(prompt_ids, params, request_id)
    if req.stream:
        return EventStreamResponse(_chunks(deltas, shape, req.include_usage, len(prompt_ids)))
    result = await _unless_disconnected(request, _collect(deltas, shape, len(prompt_ids)))
    return json_response(result) if result is not None else Response(status_code=499)


@dataclass
class Shape:
    """What every chunk or response of one request shares, and how choices are written."""

    id: str
    created: int
    model: str
    chat: bool
    logprobs: bool
    top_k: int

    def head(self, streaming: bool) -> dict[str, Any]:
        kind = ("chat.completion.chunk" if streaming else "chat.completion") if self.chat \
            else "text_completion"
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def logprobs_of(self, items: list[TokenLogprob], offset: int) -> dict[str, Any] | None:
        if not self.logprobs:
            return None
        if self.chat:
            return {"content": [{
                "token": lp.token, "logprob": lp.logprob, "bytes": list(lp.token.encode()),
                "top_logprobs": [{"token": t, "logprob": v, "bytes": list(t.encode())}
                                 for t, v in lp.top[: self.top_k]]} for lp in items]}
        offsets, position = [], offset
        for lp in items:
            offsets.append(position)
            position += len(lp.token)
        return {"tokens": [lp.token for lp in items],
                "token_logprobs": [lp.logprob for lp in items],
                "top_logprobs": [dict(lp.top[: self.top_k]) for lp in items],
                "text_offset": offsets}


@dataclass
class Totals:
    prompt_tokens: int
    cached_tokens: int = 0
    completion_tokens: int = 0

    def add(self, delta: Delta) -> None:
        if delta.prompt_tokens is not None:
            self.prompt_tokens = delta.prompt_tokens
            self.cached_tokens = delta.cached_tokens or 0
        self.completion_tokens += delta.token_count

    def usage(self) -> dict[str, Any]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": self.cached_tokens}}


def _finish(reason: str | None) -> str | None:
    return None if reason is None else ("length" if reason == "length" else "stop")


async def _chunks(deltas: AsyncIterator[Delta], shape: Shape, include_usage: bool,
                  prompt_tokens: int) -> AsyncIterator[bytes]:
    head = shape.head(streaming=True)
    if include_usage:
        head["usage"] = None
    totals = Totals(prompt_tokens)
    spoken: set[int] = set()  # choices whose role was sent
    offsets: dict[int, int] = {}
    async with contextlib.aclosing(deltas):  # type: ignore[type-var]
        try:
            async for delta in deltas:
                totals.add(delta)
                finish = _finish(delta.finish_reason)
                if not delta.text and finish is None:
                    continue  # counted; nothing to show yet
                choice: dict[str, Any] = {"index": delta.index}
                if shape.chat:
                    piece: dict[str, Any] = {}
                    if delta.index not in spoken:
                        spoken.add(delta.index)
                        piece["role"] = "assistant"
                    if delta.text:
                        piece["content"] = delta.text
                    choice["delta"] = piece
                else:
                    choice["text"] = delta.text
                offset = offsets.get(delta.index, 0)
                choice["logprobs"] = shape.logprobs_of(delta.logprobs or [], offset)
                offsets[delta.index] = offset + len(delta.text)
                choice["finish_reason"] = finish
                yield b"data: " + orjson.dumps({**head, "choices": [choice]}) + b"\n\n"
        except StreamchatError as exc:
            yield b"data: " + orjson.dumps({"error": {
                "message": exc.message, "type": exc.kind, "code": exc.code, "param": None}}) + b"\n\n"
            yield DONE
            return
    if include_usage:
        yield b"data: " + orjson.dumps({**head, "choices": [], "usage": totals.usage()}) + b"\n\n"
    yield DONE


@dataclass
class _Choice:
    parts: list[str] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None


async def _collect(deltas: AsyncIterator[Delta], shape: Shape, prompt_tokens: int) -> dict[str, Any]:
    totals = Totals(prompt_tokens)
    choices: dict[int, _Choice] = {}
    async with contextlib.aclosing(deltas):  # type: ignore[type-var]
        async for delta in deltas:
            totals.add(delta)
            choice = choices.setdefault(delta.index, _Choice())
            choice.parts.append(delta.text)
            choice.logprobs.extend(delta.logprobs or [])
            if delta.finish_reason is not None:
                choice.finish_reason = _finish(delta.finish_reason)
    out = []
    for index in sorted(choices):
        choice, text = choices[index], "".join(choices[index].parts)
        body: dict[str, Any] = {"index": index}
        if shape.chat:
            body["message"] = {"role": "assistant", "content": text}
        else:
            body["text"] = text
        body["logprobs"] = shape.logprobs_of(choice.logprobs, 0)
        body["finish_reason"] = choice.finish_reason
        out.append(body)
    return {**shape.head(streaming=False), "choices": out, "usage": totals.usage()}


async def _unless_disconnected(request: Request,
                               work: Awaitable[dict[str, Any]]) -> dict[str, Any] | None:
    """Run `work`, cancelling it (and so the engine request) if the client goes away."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None
    return task.result()


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/engines/{model}/completions", completions, methods=["POST"]),
    Route("/v1/models", models, methods=["GET"]),
]
