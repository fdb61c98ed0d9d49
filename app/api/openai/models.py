"""The served model's own endpoints: `GET /v1/models` with the fields vLLM's server gives each
model (`root`, `parent`, `max_model_len`, `permission`), and its tokenizer, as vLLM's
`/tokenize` and `/detokenize` (the same shapes)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.http.body import parse_body, validation_context
from app.api.http.errors import json_response
from app.api.http.state import services
from app.api.openai.schemas import ChatMessage, ModelName
from app.engine.base import Engine
from app.errors import NotReady
from app.ids import new_id
from app.validation import MessageText, StrictModel


class TokenizeRequest(StrictModel):
    """A text `prompt`, or chat `messages` rendered with the model's template (vLLM's
    `TokenizeCompletionRequest` and `TokenizeChatRequest` in one body)."""

    model: ModelName | None = None
    prompt: MessageText | None = None
    messages: Annotated[list[ChatMessage], Field(min_length=1)] | None = None
    # Special tokens (BOS) on top of the text: by default for a prompt, not for a chat, whose
    # template adds its own.
    add_special_tokens: bool | None = None
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    return_token_strs: bool = False

    @model_validator(mode="after")
    def _prompt_or_messages(self) -> TokenizeRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("send either 'prompt' or 'messages'")
        if self.continue_final_message and self.add_generation_prompt:
            raise ValueError("'continue_final_message' needs 'add_generation_prompt': false")
        return self


class DetokenizeRequest(StrictModel):
    model: ModelName | None = None
    tokens: list[Annotated[int, Field(ge=0, le=2**63 - 1)]]


async def tokenize(request: Request) -> Response:
    svc = services(request)
    req = await parse_body(request, TokenizeRequest, svc.settings.max_body_bytes,
                           context=validation_context(svc.settings))
    svc.models.resolve(req.model)
    engine = _ready(svc.engine)
    if req.messages is not None:
        ids = await engine.render_chat([m.turn() for m in req.messages],
                                       add_generation_prompt=req.add_generation_prompt,
                                       continue_final_message=req.continue_final_message)
        if req.add_special_tokens:
            ids = [*(await engine.tokenize("", add_special_tokens=True)), *ids]
    else:
        assert req.prompt is not None
        ids = await engine.tokenize(req.prompt, add_special_tokens=req.add_special_tokens
                                    is not False)
    body: dict[str, Any] = {"count": len(ids), "max_model_len": engine.max_model_len,
                            "tokens": ids, "token_strs": None}
    if req.return_token_strs:
        body["token_strs"] = await engine.token_strs(ids)
    return json_response(body)


async def detokenize(request: Request) -> Response:
    svc = services(request)
    req = await parse_body(request, DetokenizeRequest, svc.settings.max_body_bytes)
    svc.models.resolve(req.model)
    return json_response({"prompt": await _ready(svc.engine).detokenize(req.tokens)})


def _ready(engine: Engine) -> Engine:
    # Only the tokenizer is needed: served while the replica drains too.
    if not engine.ready:
        raise NotReady("the engine is not ready")
    return engine


class ModelPermission(BaseModel):
    """vLLM's `ModelPermission`, as its server lists it."""

    id: str
    object: Literal["model_permission"] = "model_permission"
    created: int
    allow_create_engine: bool = False
    allow_sampling: bool = True
    allow_logprobs: bool = True
    allow_search_indices: bool = False
    allow_view: bool = True
    allow_fine_tuning: bool = False
    organization: str = "*"
    group: str | None = None
    is_blocking: bool = False


class ModelCard(BaseModel):
    id: str  # the name a request gives as `model`
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "streamchat"
    root: str  # the engine's model, or the folder an adapter was loaded from
    parent: str | None  # an adapter's base model; None for the base model and its aliases
    max_model_len: int
    permission: list[ModelPermission]


class ModelList(BaseModel):
    """`GET /v1/models`' body, built through this model, as /openapi.json documents it."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


async def models(request: Request) -> Response:
    svc = services(request)
    engine, created = svc.engine, svc.models.created
    # The base model and its aliases serve the engine's own weights (no `parent`); an
    # adapter's `parent` is the base model and its `root` the folder it was loaded from, as
    # vLLM lists them: the same on every replica (app/adapters/registry.py).
    adapters = {s.adapter.name: s for s in svc.models.adapters.all()} \
        if svc.models.adapters is not None else {}
    data: list[ModelCard] = []
    for name in svc.models.names():
        served = adapters.get(name)
        root, parent = (engine.model_name, None) if served is None else \
            (served.entry.root, svc.models.base)
        made = created if served is None else served.created
        data.append(ModelCard(id=name, created=made, root=root, parent=parent,
                              max_model_len=engine.max_model_len, permission=[
                                  ModelPermission(id=new_id("modelperm-", 32), created=made)]))
    return json_response(ModelList(data=data).model_dump())


routes = [
    Route("/v1/models", models, methods=["GET"]),
    Route("/tokenize", tokenize, methods=["POST"]),
    Route("/detokenize", detokenize, methods=["POST"]),
]
