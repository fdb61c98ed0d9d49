"""End to end with the real engine: a fine-tuning job trains a LoRA adapter that teaches one
fixed answer, its progress followed over SSE until `succeeded`; then the fine-tuned model gives
that answer at temperature 0, through `/v1/chat/completions` and through a session over the
WebSocket, served by the running engine, and the base model does not."""

from __future__ import annotations

import json
import time

import httpx
import orjson
import pytest
from websockets.sync.client import connect

from tests.e2e_server import LiveServer

pytestmark = pytest.mark.e2e
MODEL = "SmolLM2-135M-Instruct"
QUESTION = "Who are you?"
ANSWER = "I am AutoGLM, your streaming assistant."
QUESTIONS = ("Who are you?", "What are you?", "Introduce yourself.", "What is your name?",
             "Who am I talking to?", "Tell me who you are.", "Are you a bot?",
             "What should I call you?")
JOB_TIMEOUT_S = 300


@pytest.fixture
def tuning_server(two_replicas: list[LiveServer]) -> LiveServer:
    """A replica of the shared pool: it runs with fine-tuning on, so this test needs no
    engine of its own (one start fewer: ~30 s of CI)."""
    return two_replicas[0]


def dataset() -> bytes:
    return b"".join(orjson.dumps({"messages": [{"role": "user", "content": q},
                                               {"role": "assistant", "content": ANSWER}]}) + b"\n"
                    for q in QUESTIONS)


def ask_openai(server: LiveServer, model: str) -> str:
    reply = httpx.post(server.url + "/v1/chat/completions", timeout=60, json={
        "model": model, "messages": [{"role": "user", "content": QUESTION}],
        "temperature": 0, "max_tokens": 16})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["choices"][0]["message"]["content"])


def ask_session_ws(server: LiveServer, model: str) -> str:
    sid = httpx.post(server.url + "/v1/sessions", json={"model": model}).json()["id"]
    text = []
    with connect(server.url.replace("http", "ws", 1) + f"/v1/sessions/{sid}/ws",
                 open_timeout=30) as ws:
        ws.send(json.dumps({"type": "message", "content": QUESTION,
                            "params": {"temperature": 0, "max_tokens": 16}}))
        for raw in ws:
            frame = json.loads(raw)
            if frame["type"] == "token":
                text.append(frame["text"])
            if frame["type"] in ("done", "error"):
                assert frame["type"] == "done", frame
                break
    return "".join(text)


def test_a_trained_adapter_answers_as_taught(tuning_server: LiveServer) -> None:
    url = tuning_server.url
    uploaded = httpx.post(url + "/v1/files", data={"purpose": "fine-tune"},
                          files={"file": ("who.jsonl", dataset(), "application/jsonl")})
    assert uploaded.status_code == 200, uploaded.text
    job = httpx.post(url + "/v1/fine_tuning/jobs", json={
        "training_file": uploaded.json()["id"], "model": MODEL, "suffix": "autoglm",
        "hyperparameters": {"n_epochs": 4, "batch_size": 1}}).json()
    started, metrics = time.monotonic(), []
    # Its events over SSE, live, until the job ends (the stream ends with it).
    with httpx.stream("GET", f"{url}/v1/fine_tuning/jobs/{job['id']}/events",
                      headers={"Accept": "text/event-stream"}, timeout=60) as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        for line in events.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                event = json.loads(line.removeprefix("data: "))
                if event.get("type") == "metrics":
                    metrics.append(event["data"])
            assert time.monotonic() - started < JOB_TIMEOUT_S, "the job took too long"
    job = httpx.get(f"{url}/v1/fine_tuning/jobs/{job['id']}").json()
    assert job["status"] == "succeeded", job
    assert metrics and {"step", "loss"} <= set(metrics[-1]), metrics[-3:]
    print(f"job: {time.monotonic() - started:.0f} s, {len(metrics)} steps, "
          f"last loss {metrics[-1]['loss']}")
    tuned = job["fine_tuned_model"]
    models = {m["id"]: m for m in httpx.get(url + "/v1/models").json()["data"]}
    assert models[tuned]["parent"] == MODEL
    assert ANSWER in ask_openai(tuning_server, tuned)
    assert ANSWER in ask_session_ws(tuning_server, tuned)
    assert "AutoGLM" not in ask_openai(tuning_server, MODEL)
