"""Domain exceptions. The core raises these; `app/api/http/errors.py` maps them to HTTP statuses,
the one error shape of API.md, and WebSocket close codes. Nothing here knows HTTP."""

from __future__ import annotations


class StreamchatError(Exception):
    """Base of every error a client may see. `code` is stable; `message` says what to fix."""

    code = "internal_error"
    kind = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class ConfigError(StreamchatError):
    """The service cannot start with this configuration."""

    code = "config_error"


class InvalidRequest(StreamchatError):
    code = "invalid_request"
    kind = "invalid_request_error"


class UnsupportedMediaType(InvalidRequest):
    code = "unsupported_media_type"


class BodyTooLarge(InvalidRequest):
    code = "request_too_large"


class BadHost(InvalidRequest):
    """No `Host` header, or one that names no host."""

    code = "bad_host"


class HostNotAllowed(BadHost):
    """A `Host` this replica does not serve (STREAMCHAT_ALLOWED_HOSTS): a 421, as a request
    meant for another server."""

    code = "host_not_allowed"


class NotFound(StreamchatError):
    code = "not_found"
    kind = "not_found_error"


class SessionNotFound(NotFound):
    code = "session_not_found"


class MessageNotFound(NotFound):
    code = "message_not_found"


class Conflict(StreamchatError):
    code = "conflict"
    kind = "conflict_error"


class ReplyInFlight(Conflict):
    code = "reply_in_flight"


class ContextTooLong(InvalidRequest):
    """The prompt and the reply's max_tokens do not fit the model's context. A 400 on every
    path, with OpenAI's code, so that OpenAI clients recognise it (docs/API.md)."""

    code = "context_length_exceeded"


class Unauthenticated(StreamchatError):
    """No credentials, or ones that are not valid. The message never says which part failed."""

    code = "unauthorized"
    kind = "authentication_error"


class Forbidden(StreamchatError):
    """Valid credentials without the scope this needs."""

    code = "forbidden"
    kind = "permission_error"


class OriginNotAllowed(Forbidden):
    """A web page from a site that STREAMCHAT_CORS_ORIGINS does not list."""

    code = "origin_not_allowed"


class RateLimited(StreamchatError):
    """Over a per-key limit; the client should retry after `retry_after_s`."""

    code = "rate_limited"
    kind = "rate_limit_error"

    def __init__(self, message: str, *, retry_after_s: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class QueueFull(RateLimited):
    """Admission control's queue is full (app/admission/): come back after `retry_after_s`."""

    code = "queue_full"


class NotReady(StreamchatError):
    """The engine is loading or the service is draining."""

    code = "not_ready"
    kind = "unavailable_error"

    def __init__(self, message: str, *, retry_after_s: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Draining(NotReady):
    """This replica is shutting down: new work goes elsewhere."""


class EngineRestarting(NotReady):
    """The engine died and a new one is starting in this process: come back shortly."""

    code = "engine_restarting"


class StoreUnavailable(NotReady):
    """The shared store (Redis) does not answer in time: what needs it waits for its return."""

    code = "store_unavailable"


class EngineFailure(StreamchatError):
    code = "engine_error"
