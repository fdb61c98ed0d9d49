"""Clients of the app in this process, no server: the official `openai` SDK, sync over a
TestClient (an httpx.Client running the app in its own loop) and async over httpx's
ASGITransport into an app started in the test's loop (conftest's `running`); and the
fixtures of the SDK's API tests (a scripted reply, the app, the SDK)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.conftest import Running
from tests.fakes import ScriptedEngine

ORIGIN = "http://localhost"  # the Host a local client sends (conftest's TestClient's too)
REPLY = ["Hel", "lo", " there", "!"]  # "Hello there!", one token a step


def sdk_for(client: TestClient) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{ORIGIN}/v1", api_key="unused", max_retries=0,
                         http_client=client)


def asgi_client(app: Running) -> httpx.AsyncClient:
    """httpx into a `running` app, each request's scope carrying the lifespan's state as a
    server's would."""

    async def with_state(scope: Any, receive: Any, send: Any) -> None:
        await app.app({**scope, "state": dict(app.state)}, receive, send)

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=with_state), base_url=ORIGIN)


def async_sdk_for(app: Running) -> openai.AsyncOpenAI:
    """The async SDK into a `running` app; `async with` it (it closes its httpx client)."""
    # The SDK's hints name httpx2's client; httpx's serves it alike.
    return openai.AsyncOpenAI(base_url=f"{ORIGIN}/v1", api_key="unused", max_retries=0,
                              http_client=asgi_client(app))  # type: ignore[arg-type]


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine(REPLY)


@pytest.fixture
def client(engine: ScriptedEngine) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(default_max_tokens=200), engine)) as test_client:
        yield test_client


@pytest.fixture
def sdk(client: TestClient) -> openai.OpenAI:
    return sdk_for(client)
