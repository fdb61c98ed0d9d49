"""Query parameters, read the one way every API reads them: a bad value is a 400 naming the
parameter, and parameters a route does not read are ignored (SDKs send their own)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.requests import Request

from app.api.http.sse import parse_last_event_id
from app.errors import InvalidRequest

_INTEGER = re.compile(r"-?[0-9]{1,18}")  # ASCII digits only: int() takes more than isdigit()


def flag(request: Request, name: str) -> bool:
    """`true` or `false`, in any case; false when absent."""
    value = request.query_params.get(name, "false").lower()
    if value not in ("true", "false"):
        raise InvalidRequest(f"'{name}' must be true or false, got {value!r}", param=name)
    return value == "true"


def integer(request: Request, name: str, *, low: int, high: int | None = None,
            what: str) -> int | None:
    """An integer from `low` (to `high`), or None when absent; else a 400 saying it must be
    `what`."""
    value = request.query_params.get(name)
    if value is None:
        return None
    number = int(value) if _INTEGER.fullmatch(value) else None
    if number is None or number < low or (high is not None and number > high):
        raise InvalidRequest(f"'{name}' must be {what}, got {value!r}", param=name)
    return number


@dataclass(frozen=True)
class Page:
    """OpenAI's cursor pages: at most `limit` items after the one whose id is `after`."""

    after: str | None
    limit: int

    @classmethod
    def of(cls, request: Request, *, default: int = 20, most: int = 100) -> Page:
        limit = integer(request, "limit", low=1, high=most, what=f"an integer from 1 to {most}")
        return cls(request.query_params.get("after"), default if limit is None else limit)


def last_event_id(request: Request, *, query: str | None = "last_event_id") -> int:
    """The seq after which a stream resumes: `Last-Event-ID` (an EventSource's), else the
    `query` parameter (a client that cannot set headers); -1, from the start, when absent or
    unreadable."""
    return parse_last_event_id(request.headers.get("last-event-id"),
                               None if query is None else request.query_params.get(query))
