"""The Responses WebSocket's client events, declared, and its `error` event.

`response.create` is the POST body's fields (`ResponsesRequest`), `stream` implicit (accepted
and ignored, as the SDK may send it), `background` refused (OpenAI's rule: not over a
WebSocket), plus `stream_id`, the lane it queues in. The SDK's other client event,
`response.steer`, is refused by name. A bad event is an InvalidRequest naming its field, as the
same error over HTTP would be; the socket answers it with an `error` event and stays open."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, field_validator

from app.api.http.errors import retry_after, status_of
from app.api.responses.schemas import ResponsesRequest
from app.errors import InvalidRequest, StreamchatError
from app.validation import validate

CREATE = "response.create"
UNSUPPORTED = frozenset({"response.steer"})  # the SDK's; steering is not served


class ResponseCreate(ResponsesRequest):
    type: Literal["response.create"]
    # The lane: creates with the same stream_id run one after another, in order; its events
    # echo it. Lanes run side by side.
    stream_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None

    @field_validator("background")
    @classmethod
    def _not_over_a_socket(cls, background: bool) -> bool:
        if background:
            raise ValueError("is not supported over the WebSocket (every response on it is "
                             "stored and resumable already)")
        return background


def parse_event(raw: bytes, context: dict[str, Any]) -> ResponseCreate:
    """A client event, or InvalidRequest naming what is wrong in it."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("event is not valid JSON", code="bad_event") from None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise InvalidRequest("event must be a JSON object with a string 'type'",
                             code="bad_event", param="type")
    if body["type"] in UNSUPPORTED:
        raise InvalidRequest(f"{body['type']!r} is not supported by this server",
                             code="unsupported_event", param="type")
    if body["type"] != CREATE:
        raise InvalidRequest(f"unknown event type {body['type']!r}; expected {CREATE!r}",
                             code="unknown_event", param="type")
    body.pop("stream", None)  # implicit
    return validate(ResponseCreate, body, context)


def error_event(exc: StreamchatError, stream_id: str | None = None) -> bytes:
    """OpenAI's `error` event: the HTTP error's status and body (`headers`: its Retry-After),
    and the lane of the `response.create` it answers."""
    error: dict[str, Any] = {"type": exc.kind, "code": exc.code, "message": exc.message,
                             "param": exc.param}
    wait = retry_after(exc)
    if wait is not None:
        error["headers"] = {"retry-after": str(wait)}
    event: dict[str, Any] = {"type": "error", "status": status_of(exc), "error": error}
    if stream_id is not None:
        event["stream_id"] = stream_id
    return orjson.dumps(event)
