from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urljoin

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from app.api.http.state import Services, State
from app.main import create_app
from app.settings import Settings
from tests.asgi import http_scope
from tests.fakes import ScriptedEngine

pytest_plugins = ["tests.browser", "tests.e2e_server", "tests.redis_server", "tests.replicas"]


@pytest.fixture(autouse=True, scope="session")
def local_test_client() -> Iterator[None]:
    """Starlette's TestClient talks to the app as a local client does, with `Host: localhost`
    (its own default, `testserver`, is a foreign host to a service listening on loopback)."""
    connect = TestClient.websocket_connect  # joins a relative URL to ws://testserver itself

    def websocket_connect(self: TestClient, url: str, *args: Any, **kwargs: Any) -> Any:
        return connect(self, urljoin("ws://localhost", url), *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TestClient, "__init__", functools.partialmethod(
            TestClient.__init__, base_url="http://localhost"))
        patch.setattr(TestClient, "websocket_connect", websocket_connect)
        yield


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture
def settings() -> Settings:
    return Settings(orphan_grace_s=0.2, default_max_tokens=16)


@pytest.fixture
def client(engine: ScriptedEngine, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


class Running:
    """An app started in the test's event loop (its lifespan entered), for raw ASGI calls."""

    def __init__(self, app: Starlette, state: State) -> None:
        self.app = app
        self.state = state

    @property
    def services(self) -> Services:
        return self.state["services"]

    def scope(self, method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
        return http_scope(method, path, headers, state=dict(self.state))


Start = Callable[[Settings, ScriptedEngine], Awaitable[Running]]


@pytest.fixture
async def running() -> AsyncIterator[Start]:
    """`await running(settings, engine)`: an app started in this loop, stopped at the end."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(settings: Settings, engine: ScriptedEngine) -> Running:
            app = create_app(settings, engine)
            state = await stack.enter_async_context(app.router.lifespan_context(app))
            await engine.start()
            return Running(app, state)  # type: ignore[arg-type]

        yield start
