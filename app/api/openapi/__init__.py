"""The API describes itself: `/openapi.json`, generated from the routes and their declared
models (document.py, operations.py); `/docs` (Swagger UI, vendored: static/docs.html) reads it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.http.errors import json_response
from app.api.openapi.document import build


async def openapi_json(request: Request) -> Response:
    state = request.app.state
    if getattr(state, "openapi", None) is None:  # the routes are fixed once the app is built
        state.openapi = build(request.app.routes, _version())
    return json_response(state.openapi)


def _version() -> str:
    try:
        return version("streamchat")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0.0.0"


routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
