from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine

pytest_plugins = ["tests.e2e_server", "tests.redis_server"]


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture
def settings() -> Settings:
    return Settings(orphan_grace_s=0.2, default_max_tokens=16)


@pytest.fixture
def client(engine: ScriptedEngine, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine)) as test_client:
        yield test_client
