"""Request bodies, read the one way every API reads them: size-capped, JSON objects only, as a
declared model (app/validation.py names the bad param).

`curl -d '{...}'` labels its body application/x-www-form-urlencoded; such a body is accepted
when it is JSON, so the README's curl lines work without `-H Content-Type`. Any other non-JSON
media type is a 415.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from app.errors import BodyTooLarge, InvalidRequest, UnsupportedMediaType
from app.settings import Settings
from app.validation import Model, validate_json


def validation_context(settings: Settings) -> dict[str, Any]:
    """The limits that request models check, from the settings."""
    return {"max_n": settings.max_n, "max_message_chars": settings.max_message_chars,
            "tool_call_parser": settings.tool_call_parser}


async def parse_body(request: Request, model: type[Model], max_bytes: int, *,
                     optional: bool = False, context: dict[str, Any] | None = None) -> Model:
    """The request's JSON body as `model`. An empty body is `{}` when `optional`."""
    raw = await read_body(request, max_bytes)
    if not raw and optional:
        raw = b"{}"
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    curl_form = media_type == "application/x-www-form-urlencoded"
    if media_type not in ("application/json", "") and not media_type.endswith("+json") \
            and not curl_form:
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {media_type!r}", param="Content-Type")
    if curl_form and not _is_json(raw):
        raise UnsupportedMediaType("Content-Type must be application/json, got a form body",
                                   param="Content-Type")
    if not raw:
        raise InvalidRequest("request body must be a JSON object")
    return validate_json(model, raw, context)


async def read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(f"request body is larger than {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise BodyTooLarge(f"request body is larger than {max_bytes} bytes")
    return bytes(body)


def _is_json(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return True


def accepts_event_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")
