"""Domain exceptions -> the error shapes of docs/API.md and their HTTP statuses, each written
here once: the HTTP body `{"error": {...}}` (`error_body`, also an OpenAI stream's error chunk)
and the WebSocket error frame (`error_frame`, whose `status` is 4000 + the same status)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message, Scope, Send

from app import errors, metrics
from app.api.http.disconnect import CLIENT_CLOSED

log = logging.getLogger("streamchat.api")

# Most specific first: the first class an error is an instance of decides.
HTTP_STATUS: list[tuple[type[errors.StreamchatError], int]] = [
    (errors.UnsupportedMediaType, 415),
    (errors.BodyTooLarge, 413),
    (errors.HostNotAllowed, 421),
    (errors.InvalidRequest, 400),
    (errors.NotFound, 404),
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.Conflict, 409),
    (errors.RateLimited, 429),
    (errors.NotReady, 503),
]

_HTTP_KINDS = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 405: "invalid_request_error", 409: "conflict_error",
               413: "invalid_request_error", 415: "invalid_request_error",
               421: "invalid_request_error",
               422: "invalid_request_error", 429: "rate_limit_error", 503: "unavailable_error"}


def status_of(exc: errors.StreamchatError) -> int:
    for cls, status in HTTP_STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def rejection_reason(exc: errors.StreamchatError) -> str | None:
    """The `reason` label of streamchat_rejected_requests_total for a refused request."""
    if isinstance(exc, errors.OriginNotAllowed):
        return "origin"
    if isinstance(exc, errors.BadHost):
        return "host"
    if isinstance(exc, (errors.Unauthenticated, errors.Forbidden)):
        return "auth"
    if isinstance(exc, errors.QueueFull):
        return "queue_full"
    if isinstance(exc, errors.RateLimited):
        return "rate_limit"
    if isinstance(exc, errors.Draining):
        return "draining"
    if isinstance(exc, errors.BodyTooLarge):
        return "too_large"
    return None


def count_rejection(exc: errors.StreamchatError) -> None:
    reason = rejection_reason(exc)
    if reason is not None:
        metrics.REJECTED.labels(reason).inc()


def error_body(message: str, type_: str, code: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


def error_frame(exc: errors.StreamchatError) -> bytes:
    """A WebSocket error frame: the HTTP error's code, message and param, its status + 4000."""
    frame = {"type": "error", "code": exc.code, "message": exc.message,
             "status": 4000 + status_of(exc), "param": exc.param}
    wait = retry_after(exc)
    if wait is not None:
        frame["retry_after"] = wait  # what Retry-After says over HTTP
    return orjson.dumps(frame)


def json_response(body: Any, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers,
                    media_type="application/json")


def retry_after(exc: errors.StreamchatError) -> int | None:
    """Whole seconds to wait before retrying (Retry-After; `retry_after` in a WebSocket error
    frame), for the errors that have one."""
    seconds = getattr(exc, "retry_after_s", None)
    return None if seconds is None else max(1, math.ceil(seconds))


def error_response(exc: errors.StreamchatError) -> Response:
    status = status_of(exc)
    wait = retry_after(exc)
    headers = None if wait is None else {"Retry-After": str(wait)}
    return json_response(error_body(exc.message, exc.kind, exc.code, exc.param), status, headers)


async def refuse(scope: Scope, send: Send, exc: errors.StreamchatError) -> None:
    """Answer a request refused before any route (a middleware's refusal): the error as an HTTP
    response, and a WebSocket refused at its handshake with the same status and body."""
    response = error_response(exc)
    if exc.code == "unauthorized":
        response.headers["www-authenticate"] = "Bearer"
    if scope["type"] == "http":
        await response({**scope}, _nothing, send)
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": response.status_code,
                    "headers": response.raw_headers})
        await send({"type": "websocket.http.response.body", "body": response.body})
    else:  # a server without the denial extension: refuse the handshake plainly
        await send({"type": "websocket.close", "code": 1008})


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


async def handle_domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.StreamchatError)
    count_rejection(exc)
    if status_of(exc) >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    return error_response(exc)


async def handle_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    kind = _HTTP_KINDS.get(exc.status_code, "server_error")
    message = str(exc.detail) if exc.status_code != 404 else f"no route for {request.url.path}"
    return json_response(error_body(message, kind, code), exc.status_code, exc.headers)


async def handle_client_left(request: Request, exc: Exception) -> Response:
    # The client closed its connection before its body was read (a client that gave up, or
    # was killed): nobody to answer, and no bug. Not handled, it was logged as a crash and
    # re-raised to uvicorn ("Exception in ASGI application").
    log.info("%s %s: the client left before its request was read",
             request.method, request.url.path)
    return Response(status_code=CLIENT_CLOSED)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    # A bug, not bad input: log the traceback here, never send it.
    log.exception("%s %s crashed", request.method, request.url.path)
    return json_response(error_body("internal error", "server_error", "internal_error"), 500)


EXCEPTION_HANDLERS = {
    errors.StreamchatError: handle_domain_error,
    HTTPException: handle_http_error,
    ClientDisconnect: handle_client_left,
    Exception: handle_unexpected,
}
