"""The seed's routes (app/api/inference.py, app/api/ops.py): `POST /v1/inference` is a background
response under another name (a task id, a status link to poll, its result), and `GET
/v1/health` is /health."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine
from tests.waiting import status_polled

ENDED = {"completed", "incomplete", "failed", "cancelled"}


@pytest.fixture
def client() -> Iterator[TestClient]:
    engine = ScriptedEngine(["Sunny", " and", " warm", "."], delay_s=0.01)
    with TestClient(create_app(Settings(default_max_tokens=50, orphan_grace_s=0.2),
                               engine)) as test_client:
        yield test_client


def poll(client: TestClient, url: str) -> dict[str, Any]:
    """What a seed client does: GET the status link until the task is done."""
    return status_polled(client, url, ENDED)


def test_a_task_is_submitted_then_polled_for_its_result(client: TestClient) -> None:
    answer = client.post("/v1/inference", json={"model": "scripted",
                                                "prompt": "Write a weather report",
                                                "max_tokens": 100})
    assert answer.status_code == 202
    task = answer.json()
    assert task["status"] == "queued" and task["task_id"].startswith("resp_")
    assert answer.headers["location"] == task["status_url"] == f"/v1/inference/{task['task_id']}"
    done = poll(client, task["status_url"])
    assert done["status"] == "completed" and done["result"] == "Sunny and warm."
    assert done["error"] is None and done["usage"]["output_tokens"] == 4
    # The task is the background response: the Responses API reads the same one.
    response = client.get(f"/v1/responses/{task['task_id']}").json()
    assert response["background"] is True and response["output"][0]["content"][0]["text"] == \
        "Sunny and warm."


def test_max_tokens_cuts_the_result_and_the_model_defaults_to_the_served_one(
        client: TestClient) -> None:
    task = client.post("/v1/inference", json={"prompt": "Hi", "max_tokens": 2}).json()
    done = poll(client, task["status_url"])
    assert (done["status"], done["result"]) == ("incomplete", "Sunny and")
    assert client.get(f"/v1/responses/{task['task_id']}").json()["model"] == "scripted"


@pytest.mark.parametrize(("body", "status", "param"), [
    ({}, 400, "prompt"),
    ({"prompt": "Hi", "max_tokens": 0}, 400, "max_tokens"),
    ({"prompt": "Hi", "max_tokens": 1 << 70}, 400, "max_tokens"),
    ({"prompt": "Hi", "temperature": 0.5}, 400, "temperature"),
    ({"prompt": "Hi", "model": "auto-glm-base"}, 404, "model"),
])
def test_a_bad_task_is_refused_naming_the_seeds_field(client: TestClient, body: dict[str, Any],
                                                      status: int, param: str) -> None:
    answer = client.post("/v1/inference", json=body)
    assert answer.status_code == status and answer.json()["error"]["param"] == param


def test_an_unknown_task_is_a_404_naming_it(client: TestClient) -> None:
    answer = client.get("/v1/inference/resp_nope")
    assert answer.status_code == 404 and answer.json()["error"]["param"] == "task_id"


def test_v1_health_is_health(client: TestClient) -> None:
    assert client.get("/v1/health").json() == client.get("/health").json() == {"status": "ok"}
