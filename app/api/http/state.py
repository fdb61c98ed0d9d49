"""What every route works with, built once by the lifespan and handed to each request as
Starlette's typed lifespan state (`request.state.services`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from starlette.requests import HTTPConnection

from app.adapters import Adapters
from app.admission import Admission
from app.chat import ChatService
from app.completions import CompletionService
from app.engine.base import Engine
from app.finetune.manager import JobManager
from app.lifecycle import Lifecycle
from app.limits import KeyLimits
from app.records import Records
from app.replies.detached import DetachedStreams
from app.served_models import ServedModels
from app.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: Engine
    lifecycle: Lifecycle
    chat: ChatService
    completions: CompletionService
    limits: KeyLimits | None  # per-key limits, with auth on
    admission: Admission
    started_at: float  # unix time, the `created` of /v1/models
    models: ServedModels  # the model names served (/v1/models, every `model` checked)
    detached: DetachedStreams  # resumable OpenAI streams, background responses
    records: Records  # stored responses (the Responses API), kept with the sessions
    adapters: Adapters  # LoRA adapters served by name (models also lists them)
    fine_tuning: JobManager | None = None  # files and jobs, with STREAMCHAT_FINE_TUNING=true


class State(TypedDict):
    services: Services


def services(connection: HTTPConnection) -> Services:
    return connection.state.services  # type: ignore[no-any-return]


def owner(connection: HTTPConnection) -> str | None:
    """Who the request acts for; None until authentication sets it."""
    return getattr(connection.state, "owner", None)


def fair_user(connection: HTTPConnection, named: str | None = None) -> str:
    """Whom the admission queue is fair to: the API key (auth on), else the user the client
    names (OpenAI's `user`), else the client's address."""
    key = owner(connection)
    if key is not None:
        return "key:" + key
    if named:
        return "user:" + named
    client = connection.client
    return "addr:" + (client.host if client is not None else "-")
