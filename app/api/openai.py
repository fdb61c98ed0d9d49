"""OpenAI-compatible endpoints: chat completions, completions, models, and the legacy
`/v1/engines/{model}/completions` the seed document's client uses. A client that leaves
aborts its engine request at once, streaming or not."""

from __future__ import annotations

import secrets
import time
from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api import models, openai_format, resumable, sse
from app.api.disconnect import unless_disconnected
from app.api.errors import json_response
from app.api.openai_reasoning import Reasoning
from app.api.openai_schemas import ChatCompletionRequest, CompletionRequest, OpenAIRequest
from app.api.openai_tool_parser import ParserReader, vllm_request
from app.api.schemas import parse_body, validation_context
from app.api.state import Services, fair_user, owner, services
from app.completion_batch import CompletionBatch, complete
from app.completions import Caller, Completion
from app.errors import InvalidRequest
from app.reasoning import ReasoningSplit

# What a client waits for when it left before the response: nginx's "client closed request".
CLIENT_CLOSED = 499


async def chat_completions(request: Request) -> Response:
    accepted_at, svc = time.monotonic(), services(request)
    req = await parse_body(request, ChatCompletionRequest, svc.settings.max_body_bytes,
                           context=validation_context(svc.settings))
    model = _served_model(svc, req.model)
    detach = resumable.asked(request) and req.stream  # a resumable stream (app/api/resumable.py)
    asked = Caller("chatcmpl-" + secrets.token_hex(12), accepted_at, owner(request),
                   fair_user(request, req.user), req.priority)
    completion = await svc.completions.chat(
        req.turns(), replace(req.generation_params(), lora=svc.models.lora(model)),
        req.requested_max_tokens, asked,
        add_generation_prompt=req.add_generation_prompt,
        continue_final_message=req.continue_final_message, tools=req.template_tools())
    respond = resumable.stream if detach else _respond
    return await respond(request, req, completion, openai_format.Shape(
        asked.request_id, int(time.time()), model, True, req.logprobs, req.top_logprobs or 0,
        req.continuous_usage, req.n, req.tool_calls(lambda: auto_reader(svc, req, model)),
        reasoning_of(svc, completion)))


async def completions(request: Request) -> Response:
    accepted_at, svc = time.monotonic(), services(request)
    req = await parse_body(request, CompletionRequest, svc.settings.max_body_bytes,
                           context=validation_context(svc.settings))
    model = _served_model(svc, req.model or request.path_params.get("model"))
    asked = Caller("cmpl-" + secrets.token_hex(12), accepted_at, owner(request),
                   fair_user(request, req.user), req.priority)
    completion = await complete(svc.completions, req.prompt,
                                replace(req.generation_params(), lora=svc.models.lora(model)),
                                req.requested_max_tokens, asked, echo=req.echo)
    return await _respond(request, req, completion, openai_format.Shape(
        asked.request_id, int(time.time()), model, False, req.logprobs is not None,
        req.logprobs or 0, req.continuous_usage, req.n))


def auto_reader(svc: Services, req: ChatCompletionRequest, model: str) -> ParserReader:
    """A reader of one choice for `tool_choice: auto`: the configured parser, new each time."""
    assert svc.settings.tool_call_parser is not None  # validation refuses auto without one
    tools = req.template_tools() or []
    return ParserReader(svc.engine.tool_parser(svc.settings.tool_call_parser, tools),
                        vllm_request(model, tools))


def reasoning_of(svc: Services, completion: Completion) -> Reasoning | None:
    """The reply's reasoning apart, when a reasoning parser is set (a new parser per choice)."""
    name = svc.settings.reasoning_parser
    if name is None:
        return None
    return Reasoning(lambda: ReasoningSplit(svc.engine.reasoning_parser(name),
                                            completion.prompt_ids))


def _served_model(svc: Services, model: str | None) -> str:
    if model is None:  # OpenAI requires it; a session without one gets the base model
        raise InvalidRequest("'model' is required", param="model")
    return svc.models.resolve(model)


async def _respond(request: Request, req: OpenAIRequest,
                   completion: Completion | CompletionBatch,
                   shape: openai_format.Shape) -> Response:
    if req.stream:
        # Pinged after any silence: waiting for admission, a long prefill, a slow token.
        return sse.EventStreamResponse(
            openai_format.chunks(completion, shape, req.include_usage),
            on_close=completion.release, ping_s=sse.PING_INTERVAL_S)
    try:
        finished, body = await unless_disconnected(request.receive,
                                                   openai_format.whole(completion, shape))
    finally:
        await completion.release()
    return json_response(body) if finished else Response(status_code=CLIENT_CLOSED)


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/engines/{model}/completions", completions, methods=["POST"]),
    *models.routes,  # /v1/models, /tokenize, /detokenize
]
