"""End to end on two real replicas sharing one Redis, each with its own cache folder: a
fine-tuned model, and an adapter loaded through the API, answer through every replica.

The training file is uploaded to one replica and the job created on the other (which trains
on the bytes Redis gave it); the job's adapter is then served by both engines, listed the same
by both; the same adapter folder, loaded under another name through the replica that has it,
is served by the other from its own copy, and unloaded through the other, by neither."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e_server import LiveServer

pytestmark = pytest.mark.e2e
MODEL = "SmolLM2-135M-Instruct"
JOB_TIMEOUT_S = 300
FOLLOW_S = 10.0  # an announcement reaches the other replica's engine within this


def dataset() -> bytes:
    return b"".join(orjson.dumps({"messages": [{"role": "user", "content": q},
                                               {"role": "assistant", "content": "I am a bot."}]})
                    + b"\n" for q in ("Who are you?", "What are you?"))


def models(server: LiveServer) -> dict[str, dict[str, Any]]:
    """`/v1/models` by id, less the permission's id (minted per answer, as vLLM's)."""
    data = httpx.get(server.url + "/v1/models", timeout=10).json()["data"]
    return {m["id"]: {k: v for k, v in m.items() if k != "permission"} for m in data}


def eventually(check: Callable[[], bool], timeout_s: float = FOLLOW_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "not followed in time"
        time.sleep(0.1)


def ask(server: LiveServer, model: str) -> httpx.Response:
    return httpx.post(server.url + "/v1/chat/completions", timeout=60, json={
        "model": model, "messages": [{"role": "user", "content": "Who are you?"}],
        "temperature": 0, "max_tokens": 8})


def test_a_fine_tuned_model_and_a_loaded_adapter_answer_through_every_replica(
        two_replicas: list[LiveServer]) -> None:
    a, b = two_replicas
    uploaded = httpx.post(a.url + "/v1/files", data={"purpose": "fine-tune"},
                          files={"file": ("who.jsonl", dataset(), "application/jsonl")})
    assert uploaded.status_code == 200, uploaded.text
    created = httpx.post(b.url + "/v1/fine_tuning/jobs", timeout=30, json={
        "training_file": uploaded.json()["id"], "model": MODEL, "suffix": "every",
        "hyperparameters": {"n_epochs": 1, "batch_size": 1}})
    assert created.status_code == 200, created.text
    started, job = time.monotonic(), created.json()
    while job["status"] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() - started < JOB_TIMEOUT_S, "the job took too long"
        time.sleep(0.5)
        job = httpx.get(f"{a.url}/v1/fine_tuning/jobs/{job['id']}", timeout=10).json()
    assert job["status"] == "succeeded", job
    tuned = job["fine_tuned_model"]
    followed = time.monotonic()
    eventually(lambda: tuned in models(a))
    print(f"job {followed - started:.1f} s; served by the other replica "
          f"{time.monotonic() - followed:.2f} s after it succeeded")
    assert models(a) == models(b) and models(a)[tuned]["parent"] == MODEL
    for server in (a, b):
        answer = ask(server, tuned)
        assert answer.status_code == 200 and answer.json()["model"] == tuned, answer.text

    # The job's folder is on b alone (its root); loaded through b, a serves its own copy.
    folder = models(b)[tuned]["root"]
    loaded = httpx.post(b.url + "/v1/load_lora_adapter", timeout=30,
                        json={"lora_name": "api-lora", "lora_path": folder})
    assert loaded.status_code == 200, loaded.text
    eventually(lambda: "api-lora" in models(a))
    assert models(a) == models(b)
    assert ask(a, "api-lora").status_code == 200
    unloaded = httpx.post(a.url + "/v1/unload_lora_adapter", timeout=30,
                          json={"lora_name": "api-lora"})
    assert unloaded.status_code == 200, unloaded.text
    eventually(lambda: "api-lora" not in models(b))
    assert ask(b, "api-lora").status_code == 404
    assert ask(b, tuned).status_code == 200
