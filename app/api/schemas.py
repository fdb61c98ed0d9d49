"""Reading request bodies: JSON objects only, size-capped, with errors a client can act on.

`curl -d '{...}'` labels its body application/x-www-form-urlencoded; such a body is accepted
when it is a JSON object, so the README's curl lines work without `-H Content-Type`. Every
other non-JSON media type is a 415.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from app.errors import BodyTooLarge, InvalidRequest, UnsupportedMediaType


async def read_json_object(request: Request, max_bytes: int, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object. An empty body is `{}` when `optional`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(f"request body is larger than {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise BodyTooLarge(f"request body is larger than {max_bytes} bytes")
    if not body and optional:
        return {}
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    curl_form = media_type == "application/x-www-form-urlencoded"
    if media_type not in ("application/json", "") and not media_type.endswith("+json") \
            and not curl_form:
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {media_type!r}", param="Content-Type")
    if not body:
        raise InvalidRequest("request body must be a JSON object")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if curl_form:
            raise UnsupportedMediaType(
                "Content-Type must be application/json, got a form body", param="Content-Type"
            ) from None
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidRequest("request body must be a JSON object")
    return value


def accepts_event_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")
