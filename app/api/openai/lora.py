"""vLLM's runtime LoRA endpoints, in its shapes: `POST /v1/load_lora_adapter` `{"lora_name",
"lora_path"}` and `POST /v1/unload_lora_adapter` `{"lora_name"}` (`admin` scope with auth on),
answering vLLM's plain-text success line once this replica serves the adapter (or no longer
does); every other replica follows within about a second (app/adapters/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from app.api.http.body import parse_body
from app.api.http.state import services
from app.validation import StrictModel

Name = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\s/]+$")]


class LoadLora(StrictModel):
    lora_name: Name
    lora_path: Annotated[str, Field(min_length=1)]
    load_inplace: Literal[False] = False  # vLLM's; only its default (a loaded name is a 409)


class UnloadLora(StrictModel):
    lora_name: Name
    lora_int_id: int | None = None  # vLLM's; the name says which


async def load(request: Request) -> Response:
    svc = services(request)
    req = await parse_body(request, LoadLora, svc.settings.max_body_bytes)
    await svc.adapters.add(req.lora_name, Path(req.lora_path))
    return PlainTextResponse(f"Success: LoRA adapter '{req.lora_name}' added successfully.")


async def unload(request: Request) -> Response:
    svc = services(request)
    req = await parse_body(request, UnloadLora, svc.settings.max_body_bytes)
    await svc.adapters.remove(req.lora_name)
    return PlainTextResponse(f"Success: LoRA adapter '{req.lora_name}' removed successfully.")


routes = [
    Route("/v1/load_lora_adapter", load, methods=["POST"]),
    Route("/v1/unload_lora_adapter", unload, methods=["POST"]),
]
