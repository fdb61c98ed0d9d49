"""The engine's supervisor (app/engine/supervisor.py): a dead engine is restarted in place,
deaths are counted within a window, and too many stop the replica; over the scripted engine."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from app import metrics
from app.engine.base import LoraAdapter
from app.engine.supervisor import EngineSupervisor
from app.errors import EngineRestarting, InvalidRequest, NotReady
from app.lifecycle import Lifecycle
from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine
from tests.waiting import until, until_in_app


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Hooks:
    """What main.py gives the supervisor, counted."""

    def __init__(self) -> None:
        self.started = 0
        self.restarted = 0

    async def on_started(self) -> None:
        self.started += 1

    async def on_restarted(self) -> None:
        self.restarted += 1


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine(ready=False)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hooks() -> Hooks:
    return Hooks()


@pytest.fixture
def lifecycle(engine: ScriptedEngine) -> Lifecycle:
    return Lifecycle(engine)


@pytest.fixture
async def supervised(engine: ScriptedEngine, lifecycle: Lifecycle, hooks: Hooks,
                     clock: Clock) -> AsyncIterator[tuple[EngineSupervisor, asyncio.Task[None]]]:
    supervisor = EngineSupervisor(engine, lifecycle, started=hooks.on_started,
                                  restarted=hooks.on_restarted, max_deaths=3, window_s=300.0,
                                  clock=clock)
    task = asyncio.create_task(supervisor.run())
    await until(lambda: lifecycle.engine_has_run)
    yield supervisor, task
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_dead_engine_is_restarted_and_ready_again(
        supervised: tuple[EngineSupervisor, asyncio.Task[None]], engine: ScriptedEngine,
        lifecycle: Lifecycle, hooks: Hooks) -> None:
    restarts = metrics.ENGINE_RESTARTS._value.get()
    assert hooks.started == 1 and lifecycle.not_ready_reason() is None
    engine.die()
    assert lifecycle.restarting and lifecycle.not_ready_reason() == "the engine is restarting"
    with pytest.raises(EngineRestarting) as info:
        lifecycle.check_accepting()
    assert info.value.code == "engine_restarting" and info.value.retry_after_s > 0
    await until(lambda: engine.ready)
    assert engine.restarts == 1 and hooks.restarted == 1 and hooks.started == 1
    assert metrics.ENGINE_RESTARTS._value.get() == restarts + 1
    assert lifecycle.not_ready_reason() is None and lifecycle.failure is None
    lifecycle.check_accepting()


async def test_deaths_further_apart_than_the_window_never_add_up(
        supervised: tuple[EngineSupervisor, asyncio.Task[None]], engine: ScriptedEngine,
        lifecycle: Lifecycle, clock: Clock) -> None:
    supervisor, task = supervised
    for _ in range(5):  # more deaths than max_deaths, each 301 s after the one before
        engine.die()
        await until(lambda: engine.ready)
        clock.now += 301.0
    assert engine.restarts == 5 and len(supervisor.deaths) == 1
    assert lifecycle.failure is None and not task.done()


async def test_the_third_death_within_the_window_gives_up(
        supervised: tuple[EngineSupervisor, asyncio.Task[None]], engine: ScriptedEngine,
        lifecycle: Lifecycle, clock: Clock) -> None:
    _, task = supervised
    deaths = metrics.ENGINE_DEATHS._value.get()
    for _ in range(2):
        engine.die()
        await until(lambda: engine.ready)
        clock.now += 100.0  # 200 s between the first and the third: within 300 s
    engine.die()
    await asyncio.wait_for(task, 5)  # the supervisor stops: nothing restarts the engine
    assert engine.restarts == 2 and not engine.ready
    assert lifecycle.failure == "the engine died 3 times within 300 s"
    assert lifecycle.not_ready_reason() == "the engine failed" and not lifecycle.restarting
    assert metrics.ENGINE_DEATHS._value.get() == deaths + 3
    with pytest.raises(NotReady) as info:
        lifecycle.check_accepting()
    assert not isinstance(info.value, EngineRestarting)


async def test_a_failed_restart_counts_as_a_death(
        supervised: tuple[EngineSupervisor, asyncio.Task[None]], engine: ScriptedEngine,
        lifecycle: Lifecycle, hooks: Hooks) -> None:
    supervisor, task = supervised
    engine.failing_restarts = 1
    engine.die()
    await until(lambda: engine.ready)  # the second try worked
    assert engine.restarts == 2 and hooks.restarted == 1 and len(supervisor.deaths) == 2
    engine.failing_restarts = 5
    engine.die()  # the third death; no restart is tried
    await asyncio.wait_for(task, 5)
    assert engine.restarts == 2 and lifecycle.failure is not None


async def test_restarts_that_keep_failing_give_up(
        supervised: tuple[EngineSupervisor, asyncio.Task[None]], engine: ScriptedEngine,
        lifecycle: Lifecycle) -> None:
    supervisor, task = supervised
    engine.failing_restarts = 10
    engine.die()
    await asyncio.wait_for(task, 5)
    assert engine.restarts == 2 and len(supervisor.deaths) == 3  # died, failed, failed
    assert lifecycle.failure == "the engine died 3 times within 300 s"


async def test_a_death_while_draining_is_not_restarted(
        supervised: tuple[EngineSupervisor, asyncio.Task[None]], engine: ScriptedEngine,
        lifecycle: Lifecycle) -> None:
    supervisor, task = supervised
    lifecycle.drain()
    engine.die()
    await asyncio.wait_for(task, 5)
    assert engine.restarts == 0 and lifecycle.failure is None and not supervisor.deaths


async def test_a_failed_first_start_is_never_retried(lifecycle: Lifecycle, hooks: Hooks) -> None:
    class Broken(ScriptedEngine):
        async def start(self) -> None:
            raise RuntimeError("no memory")

    engine = Broken(ready=False)
    lifecycle.engine = engine
    supervisor = EngineSupervisor(engine, lifecycle, started=hooks.on_started,
                                  restarted=hooks.on_restarted)
    await asyncio.wait_for(supervisor.run(), 5)
    assert lifecycle.failure == "no memory" and not lifecycle.engine_has_run
    assert lifecycle.not_ready_reason() == "the engine failed to start"
    assert hooks.started == 0 and engine.restarts == 0


class HeldRestart(ScriptedEngine):
    """Its restart waits for `go`, as a real one loads for 20-50 s."""

    def __init__(self) -> None:
        super().__init__()
        self.go = asyncio.Event()

    async def restart(self) -> None:
        await self.go.wait()
        await super().restart()


@pytest.fixture
def held() -> HeldRestart:
    return HeldRestart()


SSE = {"Accept": "text/event-stream"}


@pytest.fixture
def app_client(held: HeldRestart, lifecycle: Lifecycle) -> Iterator[TestClient]:
    lifecycle.engine = held
    settings = Settings(default_max_tokens=16, engine_max_deaths=2)
    with TestClient(create_app(settings, held, lifecycle=lifecycle)) as client:
        until_in_app(client, lambda: lifecycle.engine_has_run)
        yield client


def test_the_api_while_the_engine_restarts(app_client: TestClient, held: HeldRestart) -> None:
    client = app_client
    sid = client.post("/v1/sessions", json={}).json()["id"]
    first = client.post(f"/v1/sessions/{sid}/messages", json={"content": "hi"}, headers=SSE)
    assert first.status_code == 200 and "event: done" in first.text
    assert client.portal is not None
    client.portal.call(held.die)
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.headers["retry-after"]
    assert "restarting" in ready.json()["error"]["message"]
    assert client.get("/health").status_code == 200  # alive: no orchestrator needed
    refused = client.post(f"/v1/sessions/{sid}/messages", json={"content": "again"},
                          headers=SSE)
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert refused.json()["error"]["code"] == "engine_restarting"
    client.portal.call(held.go.set)
    until_in_app(client, lambda: held.ready)
    assert client.get("/ready").status_code == 200
    again = client.post(f"/v1/sessions/{sid}/messages", json={"content": "again"},
                        headers=SSE)
    assert again.status_code == 200 and "event: done" in again.text
    history = client.get(f"/v1/sessions/{sid}").json()["messages"]
    assert [m["content"] for m in history if m["role"] == "user"] == ["hi", "again"]


def test_health_says_503_once_the_replica_gave_up(app_client: TestClient, held: HeldRestart,
                                                   lifecycle: Lifecycle) -> None:
    client = app_client
    assert client.get("/health").status_code == 200
    held.failing_restarts = 5
    assert client.portal is not None
    client.portal.call(held.go.set)
    client.portal.call(held.die)  # then the restart fails: two deaths, engine_max_deaths=2
    until_in_app(client, lambda: lifecycle.failure is not None)
    assert held.restarts == 1
    health = client.get("/health")
    assert health.status_code == 503
    assert "the engine died 2 times within 300 s" in health.json()["error"]["message"]
    assert client.get("/ready").status_code == 503


def adapter_folder(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
    return folder


def test_lora_adapters_are_served_again_by_the_new_engine(tmp_path: Path) -> None:
    class Picky(HeldRestart):
        refused: set[str] = set()  # what this engine cannot load (a folder deleted since)

        async def add_lora(self, adapter: LoraAdapter) -> None:
            if adapter.name in self.refused:
                raise InvalidRequest(f"no adapter at {adapter.path}", param="lora_path")
            await super().add_lora(adapter)

    engine = Picky()
    engine.go.set()
    kept, gone = adapter_folder(tmp_path, "kept"), adapter_folder(tmp_path, "gone")
    settings = Settings(lora_modules=f"kept={kept},gone={gone}")
    with TestClient(create_app(settings, engine)) as client:
        until_in_app(client, lambda: len(engine.loras) == 2)
        ids = {a.name: a.lora_id for a in engine.loras.values()}
        engine.refused = {"gone"}
        assert client.portal is not None
        client.portal.call(engine.die)
        until_in_app(client, lambda: engine.restarts == 1 and engine.ready)
        assert {a.name: a.lora_id for a in engine.loras.values()} == {"kept": ids["kept"]}
        models = {m["id"] for m in client.get("/v1/models").json()["data"]}
        assert "kept" in models and "gone" not in models
