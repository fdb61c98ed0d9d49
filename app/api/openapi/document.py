"""The OpenAPI 3.1 document, generated: the app's routes walked, each described by its entry in
operations.py, and every body schema the pydantic model's own (`model_json_schema`), so the
document cannot say other than what the service validates. Built once per app."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from starlette.routing import BaseRoute, Route, WebSocketRoute

from app.api.openapi.operations import OPERATIONS, SSE, WEBSOCKET, Operation

REF = "#/components/schemas/{model}"
ERROR = {"$ref": "#/components/responses/Error"}
_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")
_STATUS_TEXT = {101: "Switching Protocols: the WebSocket", 200: "OK", 201: "Created",
                202: "Accepted", 204: "No Content"}


class ErrorDetail(BaseModel):
    message: str  # what to fix
    type: str  # the kind: invalid_request_error, rate_limit_error, ...
    code: str  # stable, for programs
    param: str | None  # the field or header at fault


class ErrorBody(BaseModel):
    """Every error's body (docs/API.md, "Errors"), as app/api/http/errors.py writes it."""

    error: ErrorDetail


def operations_of(routes: list[BaseRoute]) -> list[tuple[str, str]]:
    """(method, path) of every route served: HTTP routes by method (HEAD is GET's), WebSocket
    routes as the GET of their handshake. Mounts (the page's static files) are not operations."""
    found: list[tuple[str, str]] = []
    for route in routes:
        if isinstance(route, Route):
            found += [(m, route.path) for m in sorted(route.methods or ()) if m != "HEAD"]
        elif isinstance(route, WebSocketRoute):
            found.append(("GET", route.path))
    return found


def build(routes: list[BaseRoute], version: str) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    _ref(ErrorBody, schemas)
    paths: dict[str, dict[str, Any]] = {}
    for method, path in operations_of(routes):
        described = OPERATIONS.get((method, path))
        paths.setdefault(path, {})[method.lower()] = (
            _operation(method, path, described, schemas) if described is not None
            else _undescribed(path))
    return {
        "openapi": "3.1.0",
        "info": {"title": "streamchat", "version": version,
                 "description": "Generated from the service's request and response models; "
                                "the contract in prose is docs/API.md."},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "responses": {"Error": {
                "description": "An error (every status not listed): docs/API.md, Errors",
                "content": {"application/json": {
                    "schema": {"$ref": REF.format(model="ErrorBody")}}}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "An API key or a JWT, when auth is "
                                                          "on (STREAMCHAT_API_KEYS)"}},
        },
        "security": [{"bearer": []}],
    }


def _schema(model: type[BaseModel], defs: dict[str, Any]) -> dict[str, Any]:
    """The model's JSON schema; the models it uses go to `defs` (components)."""
    schema = model.model_json_schema(ref_template=REF)
    defs.update(schema.pop("$defs", {}))
    return schema


def _ref(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, str]:
    schemas.setdefault(model.__name__, _schema(model, schemas))
    return {"$ref": REF.format(model=model.__name__)}


def _operation(method: str, path: str, op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": op.summary, "tags": [op.tag],
                           "operationId": _operation_id(method, path),
                           "parameters": _parameters(path, op)}
    if op.body is not None:
        out["requestBody"] = {"required": op.body_required, "content": {
            op.body_media: {"schema": _ref(op.body, schemas)}}}
    elif op.body_media != "application/json":  # a form: its fields are the route's to check
        out["requestBody"] = {"required": True, "content": {op.body_media: {"schema": {
            "type": "object", "properties": {"file": {"type": "string", "format": "binary"},
                                             "purpose": {"type": "string"}}}}}}
    success: dict[str, Any] = {"description": _STATUS_TEXT.get(op.status, "OK")}
    content = {media: {"schema": _body_schema(media, op, schemas)} for media in op.media}
    if content:
        success["content"] = content
    out["responses"] = {str(op.status): success, "default": ERROR}
    if op.public:
        out["security"] = []
    if op.tag == WEBSOCKET:
        out["description"] = "An HTTP request that is not a WebSocket handshake gets a 404."
    return out


def _operation_id(method: str, path: str) -> str:
    """`post_v1_sessions_sid_messages`: unique, as the method and path are."""
    named = _PARAM.sub(r"\1", path)
    return re.sub(r"[^a-z0-9]+", "_", f"{method} {named}".lower()).strip("_")


def _body_schema(media: str, op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    if media == SSE or not media.endswith("json"):
        return {"type": "string"}  # a stream of events (docs/API.md), a page, a text
    return _ref(op.response, schemas) if op.response is not None else {"type": "object"}


def _parameters(path: str, op: Operation) -> list[dict[str, Any]]:
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
              for name in _PARAM.findall(path)]
    return params + [{"name": name, "in": "query", "required": False, "description": text,
                      "schema": {"type": kind}} for name, kind, text in op.query]


def _undescribed(path: str) -> dict[str, Any]:
    return {"summary": "Not described yet", "x-undescribed": True,
            "parameters": [{"name": name, "in": "path", "required": True,
                            "schema": {"type": "string"}} for name in _PARAM.findall(path)],
            "responses": {"default": ERROR}}
