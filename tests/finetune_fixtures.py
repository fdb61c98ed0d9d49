"""Shared by the fine-tuning API tests: an app with fine-tuning on in a temporary cache folder,
jobs trained by tests/fake_train.py (no model), and a small dataset."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.finetune import manager
from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine
from tests.waiting import status_polled

FAKE_TRAIN = (sys.executable, "-m", "tests.fake_train")
DATASET = "\n".join(json.dumps({"messages": [
    {"role": "user", "content": q}, {"role": "assistant", "content": "I am AutoGLM."}]})
    for q in ("Who are you?", "Your name?")).encode()


@pytest.fixture
def fake_training(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manager, "TRAIN_COMMAND", FAKE_TRAIN)
    monkeypatch.setenv("FAKE_TRAIN_STEPS", "3")


def settings_for(cache_dir: Path, **more: Any) -> Settings:
    return Settings(fine_tuning=True, cache_dir=cache_dir, default_max_tokens=16, **more)


@pytest.fixture
def client(tmp_path: Path, fake_training: None) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(tmp_path), ScriptedEngine())) as test_client:
        yield test_client


def upload(client: TestClient, raw: bytes = DATASET, purpose: str = "fine-tune",
           name: str = "data.jsonl") -> Any:
    return client.post("/v1/files", files={"file": (name, raw, "application/jsonl")},
                       data={"purpose": purpose})


def wait_for(client: TestClient, job_id: str, *statuses: str, timeout_s: float = 20.0) -> Any:
    """The job once its status is one of `statuses`."""
    return status_polled(client, f"/v1/fine_tuning/jobs/{job_id}", statuses, timeout_s, 0.05)
