"""LoRA adapters and training files on two replicas sharing one real Redis, each with a
scripted engine and its own cache folder: an adapter loaded or unloaded through either is
served or dropped by both, a file uploaded to one trains a job created on the other, whose
model both then serve, `/v1/models` answers the same on both, and while Redis is away loading
and unloading answer 503 `store_unavailable` while the adapters already loaded keep serving."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine
from tests.finetune_fixtures import DATASET, fake_training, upload, wait_for
from tests.redis_server import RedisServer
from tests.test_api_lora import adapter_folder, load

__all__ = ["fake_training"]
Pair = tuple[TestClient, TestClient, ScriptedEngine, ScriptedEngine]


def settings_for(redis: RedisServer, cache_dir: Path) -> Settings:
    return Settings(fine_tuning=True, redis_url=redis.url, cache_dir=cache_dir,
                    default_max_tokens=16)


@pytest.fixture
def replicas(redis_server: RedisServer, tmp_path: Path, fake_training: None) -> Iterator[Pair]:
    redis_server.flush()
    engine_a, engine_b = ScriptedEngine(), ScriptedEngine()
    with TestClient(create_app(settings_for(redis_server, tmp_path / "a"), engine_a)) as a, \
            TestClient(create_app(settings_for(redis_server, tmp_path / "b"), engine_b)) as b:
        yield a, b, engine_a, engine_b


def listed(client: TestClient) -> list[dict[str, Any]]:
    """`/v1/models`' entries, less the permission's id (minted per answer, as vLLM's)."""
    data = client.get("/v1/models").json()["data"]
    return [{k: v for k, v in model.items() if k != "permission"} for model in data]


def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Another replica follows through Redis, in its own loop: poll until it has."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the other replica did not follow in time"
        time.sleep(0.02)


def chat(client: TestClient, model: str) -> Any:
    return client.post("/v1/chat/completions", json={
        "model": model, "messages": [{"role": "user", "content": "Hi"}]})


def test_an_adapter_loaded_through_one_replica_is_served_by_both(replicas: Pair,
                                                                 tmp_path: Path) -> None:
    a, b, _, engine_b = replicas
    folder = adapter_folder(tmp_path, "only-on-a")
    assert load(a, "mine", folder).status_code == 200
    eventually(lambda: "mine" in {m["id"] for m in listed(b)})
    assert listed(a) == listed(b)  # names, created, root, parent: the same answer
    assert chat(b, "mine").status_code == 200
    assert engine_b.params[-1].lora is not None and engine_b.params[-1].lora.name == "mine"
    taken = load(b, "mine", folder)
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "lora_exists"

    assert b.post("/v1/unload_lora_adapter", json={"lora_name": "mine"}).status_code == 200
    eventually(lambda: "mine" not in {m["id"] for m in listed(a)})
    assert chat(a, "mine").status_code == 404
    assert listed(a) == listed(b)


def test_a_file_uploaded_to_one_trains_a_job_on_the_other_served_by_both(replicas: Pair,
                                                                          tmp_path: Path) -> None:
    a, b, engine_a, _ = replicas
    file_id = upload(a).json()["id"]
    created = b.post("/v1/fine_tuning/jobs", json={"training_file": file_id,
                                                   "model": "scripted", "suffix": "x"})
    assert created.status_code == 200, created.text
    job = wait_for(b, created.json()["id"], "succeeded", "failed")
    assert job["status"] == "succeeded", job
    # b trained on its own copy of the bytes, written out of Redis.
    assert (tmp_path / "b" / "files" / f"{file_id}.jsonl").read_bytes() == DATASET
    tuned = job["fine_tuned_model"]
    eventually(lambda: tuned in {m["id"] for m in listed(a)})
    assert chat(a, tuned).status_code == 200
    assert engine_a.params[-1].lora is not None and engine_a.params[-1].lora.name == tuned
    assert listed(a) == listed(b)


def test_redis_away_loading_answers_503_and_loaded_adapters_serve(
        tmp_path: Path, fake_training: None) -> None:
    redis = RedisServer()  # its own: this test kills it
    try:
        with TestClient(create_app(settings_for(redis, tmp_path / "a"), ScriptedEngine())) as a:
            assert load(a, "kept", adapter_folder(tmp_path, "kept")).status_code == 200
            redis.kill()
            refused = load(a, "new", adapter_folder(tmp_path, "new"))
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "store_unavailable"
            assert int(refused.headers["retry-after"]) >= 1
            unload = a.post("/v1/unload_lora_adapter", json={"lora_name": "kept"})
            assert unload.status_code == 503
            assert chat(a, "kept").status_code == 200
            assert "new" not in {m["id"] for m in listed(a)}
    finally:
        redis.stop()


def test_a_replica_started_later_serves_what_the_others_do(replicas: Pair, tmp_path: Path,
                                                           redis_server: RedisServer) -> None:
    a, _, _, _ = replicas
    assert load(a, "early", adapter_folder(tmp_path, "early")).status_code == 200
    engine_c = ScriptedEngine()
    with TestClient(create_app(settings_for(redis_server, tmp_path / "c"), engine_c)) as c:
        eventually(lambda: "early" in {m["id"] for m in listed(c)})  # its engine starts first
        assert listed(c) == listed(a)
        assert chat(c, "early").status_code == 200
        assert engine_c.params[-1].lora is not None
