"""OpenAI-compatible endpoints: chat completions, completions, and the legacy
`/v1/engines/{model}/completions` the seed document's client uses. A client that leaves
aborts its engine request at once, streaming or not."""

from __future__ import annotations

import time
from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.http import sse
from app.api.http.body import parse_body, validation_context
from app.api.http.disconnect import CLIENT_CLOSED, unless_disconnected
from app.api.http.errors import json_response
from app.api.http.state import Services, fair_user, owner, services
from app.api.openai import resumable
from app.api.openai.format import Shape, chunks, whole
from app.api.openai.reasoning import reasoning_of
from app.api.openai.schemas import ChatCompletionRequest, CompletionRequest, OpenAIRequest
from app.api.openai.tool_parser import auto_reader
from app.completion_batch import CompletionBatch, complete
from app.completions import Caller, Completion
from app.errors import InvalidRequest
from app.ids import new_id


async def chat_completions(request: Request) -> Response:
    accepted_at, svc = time.monotonic(), services(request)
    req = await parse_body(request, ChatCompletionRequest, svc.settings.max_body_bytes,
                           context=validation_context(svc.settings))
    model = _served_model(svc, req.model)
    detach = resumable.asked(request) and req.stream  # a resumable stream (resumable.py)
    asked = Caller(new_id("chatcmpl-"), accepted_at, owner(request),
                   fair_user(request, req.user), req.priority)
    completion = await svc.completions.chat(
        req.turns(), replace(req.generation_params(), lora=svc.models.lora(model)),
        req.requested_max_tokens, asked,
        add_generation_prompt=req.add_generation_prompt,
        continue_final_message=req.continue_final_message, tools=req.template_tools())
    respond = resumable.stream if detach else _respond
    return await respond(request, req, completion, Shape(
        asked.request_id, int(time.time()), model, True, req.logprobs, req.top_logprobs or 0,
        req.continuous_usage, req.n, req.tool_calls(lambda: auto_reader(svc, req, model)),
        reasoning_of(svc, completion)))


async def completions(request: Request) -> Response:
    accepted_at, svc = time.monotonic(), services(request)
    req = await parse_body(request, CompletionRequest, svc.settings.max_body_bytes,
                           context=validation_context(svc.settings))
    model = _served_model(svc, req.model or request.path_params.get("model"))
    asked = Caller(new_id("cmpl-"), accepted_at, owner(request),
                   fair_user(request, req.user), req.priority)
    completion = await complete(svc.completions, req.prompt,
                                replace(req.generation_params(), lora=svc.models.lora(model)),
                                req.requested_max_tokens, asked, echo=req.echo)
    return await _respond(request, req, completion, Shape(
        asked.request_id, int(time.time()), model, False, req.logprobs is not None,
        req.logprobs or 0, req.continuous_usage, req.n))


def _served_model(svc: Services, model: str | None) -> str:
    if model is None:  # OpenAI requires it; a session without one gets the base model
        raise InvalidRequest("'model' is required", param="model")
    return svc.models.resolve(model)


async def _respond(request: Request, req: OpenAIRequest,
                   completion: Completion | CompletionBatch,
                   shape: Shape) -> Response:
    if req.stream:
        # Pinged after any silence: waiting for admission, a long prefill, a slow token.
        return sse.EventStreamResponse(
            sse.openai_frames(chunks(completion, shape, req.include_usage)),
            on_close=completion.release, ping_s=sse.PING_INTERVAL_S)
    try:
        finished, body = await unless_disconnected(request.receive,
                                                   whole(completion, shape))
    finally:
        await completion.release()
    return json_response(body) if finished else Response(status_code=CLIENT_CLOSED)


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/engines/{model}/completions", completions, methods=["POST"]),
]
