"""LoRA adapters served by name, with a scripted engine: vLLM's load/unload endpoints,
STREAMCHAT_LORA_MODULES at start, `/v1/models` listing them under the base model, and every
transport (chat and text completions, sessions, the Responses API) generating with the
adapter its model names; an unloaded or unknown one is a 404."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine

ADMIN = {"Authorization": "Bearer sk-ops"}
CHAT_KEY = {"Authorization": "Bearer sk-alice"}


def adapter_folder(root: Path, name: str = "adapter", rank: int = 8) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank, "peft_type": "LORA"}))
    return folder


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture
def client(engine: ScriptedEngine, tmp_path: Path) -> Iterator[TestClient]:
    # Its own cache folder: fine-tuning serves again the adapters of jobs found there.
    settings = Settings(fine_tuning=True, default_max_tokens=50, cache_dir=tmp_path / "cache")
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


def load(client: TestClient, name: str, path: Path | str, **headers: str) -> Any:
    return client.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(path)},
                       headers=headers)


def test_a_loaded_adapter_is_listed_and_used_by_every_transport(
        client: TestClient, engine: ScriptedEngine, tmp_path: Path) -> None:
    folder = adapter_folder(tmp_path)
    response = load(client, "my-lora", folder)
    assert response.status_code == 200
    assert response.text == "Success: LoRA adapter 'my-lora' added successfully."
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert models["my-lora"]["parent"] == "scripted" and models["my-lora"]["root"] == str(folder)
    assert models["scripted"]["parent"] is None
    [loaded] = engine.loras.values()
    assert loaded.name == "my-lora" and loaded.path == str(folder)

    chat = {"model": "my-lora", "messages": [{"role": "user", "content": "Hi"}]}
    assert client.post("/v1/chat/completions", json=chat).json()["model"] == "my-lora"
    assert engine.params[-1].lora == loaded
    client.post("/v1/completions", json={"model": "my-lora", "prompt": "Hi"})
    assert engine.params[-1].lora == loaded
    client.post("/v1/responses", json={"model": "my-lora", "input": "Hi"})
    assert engine.params[-1].lora == loaded
    sid = client.post("/v1/sessions", json={"model": "my-lora"}).json()["id"]
    client.post(f"/v1/sessions/{sid}/messages", json={"content": "Hi"},
                headers={"Accept": "text/event-stream"})
    assert engine.params[-1].lora == loaded
    # The base model and its aliases run without it.
    client.post("/v1/chat/completions", json={**chat, "model": "scripted"})
    assert engine.params[-1].lora is None

    unloaded = client.post("/v1/unload_lora_adapter", json={"lora_name": "my-lora"})
    assert unloaded.text == "Success: LoRA adapter 'my-lora' removed successfully."
    assert not engine.loras
    assert "my-lora" not in {m["id"] for m in client.get("/v1/models").json()["data"]}
    gone = client.post("/v1/chat/completions", json=chat)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "model_not_found"
    again = client.post(f"/v1/sessions/{sid}/messages", json={"content": "Hi"})
    assert again.status_code == 404


@pytest.mark.parametrize(("make", "status", "param"), [
    (lambda root: root / "missing", 400, "lora_path"),
    (lambda root: adapter_folder(root, rank=64), 400, "lora_path"),
    (lambda root: adapter_folder(root, "broken"), 400, "lora_path"),
])
def test_a_folder_the_engine_cannot_serve_is_a_400(client: TestClient, tmp_path: Path, make: Any,
                                                   status: int, param: str) -> None:
    response = load(client, "x", make(tmp_path))
    assert response.status_code == status and response.json()["error"]["param"] == param
    assert "x" not in {m["id"] for m in client.get("/v1/models").json()["data"]}


def test_names_taken_unknown_and_bad_bodies(client: TestClient, tmp_path: Path) -> None:
    folder = adapter_folder(tmp_path)
    assert load(client, "a", folder).status_code == 200
    taken = load(client, "a", folder)
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "lora_exists"
    assert load(client, "scripted", folder).status_code == 400  # the base model's name
    unknown = client.post("/v1/unload_lora_adapter", json={"lora_name": "nope"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "lora_not_found"
    bad = client.post("/v1/load_lora_adapter", json={"lora_name": "b"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "lora_path"
    inplace = client.post("/v1/load_lora_adapter", json={
        "lora_name": "a", "lora_path": str(folder), "load_inplace": True})
    assert inplace.status_code == 400 and inplace.json()["error"]["param"] == "load_inplace"


def test_off_without_fine_tuning_or_modules(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(), ScriptedEngine())) as client:
        response = load(client, "a", adapter_folder(tmp_path))
    assert response.status_code == 400 and response.json()["error"]["code"] == "lora_disabled"
    assert "STREAMCHAT_FINE_TUNING" in response.json()["error"]["message"]


def test_lora_modules_are_served_from_the_start(tmp_path: Path) -> None:
    folder = adapter_folder(tmp_path)
    engine = ScriptedEngine()
    # The setting as its variable gives it (STREAMCHAT_LORA_MODULES), parsed by the model.
    settings = Settings.model_validate({"lora_modules": f"first={folder}"})
    with TestClient(create_app(settings, engine)) as client:
        for _ in range(100):  # the engine, then its adapters, start in the background
            ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
            if len(ids) == 2:
                break
        assert ids == ["scripted", "first"]
        client.post("/v1/chat/completions", json={
            "model": "first", "messages": [{"role": "user", "content": "Hi"}]})
    assert engine.params[-1].lora is not None and engine.params[-1].lora.name == "first"


def test_a_bad_lora_module_stops_the_service_at_start(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings.model_validate({"lora_modules": f"bad={tmp_path / 'nope'}"}),
                     ScriptedEngine())
    with TestClient(app) as client:
        ready = client.get("/ready")
        for _ in range(50):  # the engine starts in the background
            if "failed" in ready.text:
                break
            ready = client.get("/ready")
    assert ready.status_code == 503 and "failed to start" in ready.text
    assert "STREAMCHAT_LORA_MODULES: bad=" in caplog.text and "adapter_config.json" in caplog.text


def test_loading_needs_the_admin_scope(tmp_path: Path) -> None:
    settings = Settings(fine_tuning=True, api_keys="alice:sk-alice:chat,ops:sk-ops:admin",
                        cache_dir=tmp_path / "cache")
    with TestClient(create_app(settings, ScriptedEngine())) as client:
        refused = load(client, "a", adapter_folder(tmp_path), **CHAT_KEY)
        assert refused.status_code == 403
        assert load(client, "a", tmp_path / "adapter", **ADMIN).status_code == 200
