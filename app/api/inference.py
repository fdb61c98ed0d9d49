"""The seed's asynchronous task, `POST /v1/inference` (`{"model", "prompt", "max_tokens"}`: a
task id and a status link to poll), as a thin alias onto a background response
(app/api/responses/): the task is that response, its id the response's, so `GET
/v1/inference/{id}` and `GET /v1/responses/{id}` read the same thing, on any replica, with the
same owners, limits and admission. Nothing here runs a generation."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message

from app.api.http.body import parse_body, validation_context
from app.api.http.errors import json_response
from app.api.http.state import services
from app.api.openai.schemas import ModelName, PositiveInt
from app.api.responses import responses
from app.errors import StreamchatError
from app.validation import MessageText, StrictModel

# The Responses field an error names -> the seed's name for it.
_SEED_NAMES = {"input": "prompt", "max_output_tokens": "max_tokens", "response_id": "task_id"}


class InferenceRequest(StrictModel):
    prompt: MessageText
    model: ModelName | None = None  # the served model when absent
    max_tokens: PositiveInt | None = None


class InferenceTask(BaseModel):
    task_id: str
    status: Literal["queued", "in_progress", "completed", "incomplete", "failed", "cancelled"]
    status_url: str  # GET it: status and result


class InferenceError(BaseModel):
    code: str
    message: str


class InferenceStatus(InferenceTask):
    result: str | None  # the reply's text once completed (or incomplete: cut at max_tokens)
    error: InferenceError | None
    usage: dict[str, Any] | None  # the response's token counts


async def submit(request: Request) -> Response:
    svc = services(request)
    req = await parse_body(request, InferenceRequest, svc.settings.max_body_bytes,
                           context=validation_context(svc.settings))
    body = {"model": req.model or svc.models.base, "input": req.prompt, "background": True,
            "max_output_tokens": req.max_tokens}
    answer = await _as_seed(responses.create, _forwarded(request, "POST", "/v1/responses", {}, body))
    task = _task(orjson.loads(answer.body))
    return json_response(task.model_dump(), 202, headers={"Location": task.status_url})


async def status(request: Request) -> Response:
    task_id = request.path_params["task_id"]
    answer = await _as_seed(responses.retrieve, _forwarded(
        request, "GET", f"/v1/responses/{task_id}", {"response_id": task_id}, None))
    response = orjson.loads(answer.body)
    texts = [part["text"] for item in response["output"] if item["type"] == "message"
             for part in item["content"] if part["type"] == "output_text"]
    done = response["status"] in ("completed", "incomplete")
    return json_response(InferenceStatus(
        **_task(response).model_dump(), result="".join(texts) if done else None,
        error=response["error"], usage=response["usage"]).model_dump())


def _task(response: dict[str, Any]) -> InferenceTask:
    return InferenceTask(task_id=response["id"], status=response["status"],
                         status_url=f"/v1/inference/{response['id']}")


def _forwarded(request: Request, method: str, path: str, path_params: dict[str, str],
               body: dict[str, Any] | None) -> Request:
    """The same connection (owner, headers) as a request to the Responses route."""
    # json, not orjson: a max_tokens past 64 bits is the Responses route's to refuse.
    raw = b"" if body is None else json.dumps(
        {k: v for k, v in body.items() if v is not None}).encode()
    headers = [(k, v) for k, v in request.scope["headers"]
               if k not in (b"content-type", b"content-length", b"accept")]
    headers += [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await request.receive()  # the client's disconnect

    scope = {**request.scope, "method": method, "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": headers, "path_params": path_params}
    return Request(scope, receive)


async def _as_seed(route: Callable[[Request], Awaitable[Response]], forwarded: Request) -> Response:
    """The route's answer; its errors naming the seed's fields."""
    try:
        return await route(forwarded)
    except StreamchatError as exc:
        if exc.param in _SEED_NAMES:
            exc.param = _SEED_NAMES[exc.param]
        raise


routes = [
    Route("/v1/inference", submit, methods=["POST"]),
    Route("/v1/inference/{task_id}", status, methods=["GET"]),
]
