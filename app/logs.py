"""Logs: one line per request and one per stream (a generation), as JSON for machines or as
text for a terminal, carrying the request id and the key that made it.

The request id and key id travel in a context variable set by the HTTP layer; asyncio copies
the context into every task a request starts, so a session reply that outlives its request
still logs under the request that started it. Prompt and reply text are never logged unless
`log_content` is on.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import orjson

access_log = logging.getLogger("streamchat.access")


@dataclass
class RequestContext:
    request_id: str
    key_id: str | None = None


request_context: ContextVar[RequestContext | None] = ContextVar("request_context", default=None)
_content_logged = False


def content_logged() -> bool:
    return _content_logged


def log_line(event: str, **fields: Any) -> None:
    """One structured line: the event, the request's id and key, then `fields`."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    context = request_context.get()
    head: dict[str, Any] = {"event": event}
    if context is not None:
        head.update(request_id=context.request_id, key_id=context.key_id)
    access_log.info(event, extra={"fields": {**head, **fields}})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 3), "level": record.levelname.lower(),
            "logger": record.name}
        fields = getattr(record, "fields", None)
        if fields is not None:
            line.update(fields)
        else:
            line["message"] = record.getMessage()
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if fields is None:
            return super().format(record)
        saved = record.msg, record.args
        record.msg = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        record.args = None
        try:
            return super().format(record)
        finally:
            record.msg, record.args = saved


def setup_logging(level: str, log_format: Literal["json", "text"] | None,
                  log_content: bool) -> Literal["json", "text"]:
    """Configure the root logger (uvicorn's and vLLM's loggers included); the format chosen."""
    global _content_logged
    _content_logged = log_content
    chosen = log_format or ("text" if sys.stdout.isatty() else "json")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # uvicorn is started without its own logging config, so its lines come through here too;
    # vLLM keeps its own handler and format (its engine core runs in another process).
    return chosen


def elapsed_ms(since: float) -> float:
    return round((time.monotonic() - since) * 1000, 3)
