"""/v1/fine_tuning/jobs with jobs trained by a fake worker (tests/fake_train.py): create (and
the /v1/fine-tune alias), pages, cancel (409 once ended), events listed and streamed over SSE,
bad input named, the adapter served once a job succeeds, and the `openai` SDK reading it all."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from starlette.testclient import TestClient

from app.api.http.sse import EventParser
from tests.finetune_fixtures import DATASET, client, fake_training, upload, wait_for
from tests.sdk_clients import sdk_for

__all__ = ["client", "fake_training"]


def start(client: TestClient, path: str = "/v1/fine_tuning/jobs", **body: Any) -> Any:
    file_id = upload(client).json()["id"]
    response = client.post(path, json={"training_file": file_id, "model": "scripted", **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_job_trains_and_its_adapter_is_served(client: TestClient,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    job = start(client, suffix="bot", hyperparameters={"n_epochs": 2,
                                                       "learning_rate_multiplier": 0.5})
    assert job["id"].startswith("ftjob-") and job["object"] == "fine_tuning.job"
    assert job["status"] == "validating_files" and job["model"] == "scripted"
    assert job["hyperparameters"] == {"n_epochs": 2, "learning_rate_multiplier": 0.5,
                                      "batch_size": 1}
    assert job["fine_tuned_model"] is None and job["error"] is None
    done = wait_for(client, job["id"], "succeeded", "failed")
    short = job["id"].removeprefix("ftjob-")
    assert done["status"] == "succeeded", done["error"]
    assert done["fine_tuned_model"] == f"ft:scripted:bot:{short}"
    assert done["trained_tokens"] == 30 and isinstance(done["finished_at"], int)
    served = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert done["fine_tuned_model"] in served
    reply = client.post("/v1/chat/completions", json={
        "model": done["fine_tuned_model"], "messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 200 and reply.json()["model"] == done["fine_tuned_model"]
    events = client.get(f"/v1/fine_tuning/jobs/{job['id']}/events?limit=100").json()
    messages = [e["message"] for e in reversed(events["data"])]  # newest first
    assert messages[0] == f"Created fine-tuning job: {job['id']}"
    assert "fake training, lr 0.0005" in messages
    assert messages[-1].startswith("The job has successfully completed")
    metrics = [e for e in events["data"] if e["type"] == "metrics"]
    assert [m["data"]["step"] for m in reversed(metrics)] == [1, 2, 3]
    assert set(metrics[0]["data"]) == {"step", "total_steps", "loss", "tokens_per_s", "eta_s"}


def test_no_suffix_leaves_its_part_empty_and_the_alias_path_works(client: TestClient) -> None:
    job = start(client, path="/v1/fine-tune")
    done = wait_for(client, job["id"], "succeeded")
    assert done["fine_tuned_model"] == f"ft:scripted::{job['id'].removeprefix('ftjob-')}"


def test_bad_input_is_named(client: TestClient) -> None:
    file_id = upload(client).json()["id"]

    def error(body: dict[str, Any], status: int = 400) -> Any:
        response = client.post("/v1/fine_tuning/jobs", json=body)
        assert response.status_code == status, response.text
        return response.json()["error"]

    assert error({"training_file": "file-nope", "model": "scripted"})["param"] == "training_file"
    assert error({"training_file": file_id, "model": "scripted",
                  "validation_file": "file-nope"})["param"] == "validation_file"
    unknown = error({"training_file": file_id, "model": "gpt-9"}, 404)
    assert unknown["code"] == "model_not_found" and unknown["param"] == "model"
    for name, value in [("n_epochs", 0), ("n_epochs", 51), ("learning_rate_multiplier", 0),
                        ("learning_rate_multiplier", 11.0), ("batch_size", 0),
                        ("batch_size", "big")]:
        found = error({"training_file": file_id, "model": "scripted",
                       "hyperparameters": {name: value}})
        assert found["param"] == f"hyperparameters.{name}", found
    assert error({"training_file": file_id, "model": "scripted",
                  "suffix": "has:colon"})["param"] == "suffix"
    assert error({"training_file": file_id, "model": "scripted",
                  "method": {}})["code"] == "unknown_parameter"
    assert error({"model": "scripted"})["param"] == "training_file"
    assert client.get("/v1/fine_tuning/jobs").json()["data"] == []


def test_a_fine_tuned_model_is_not_fine_tuned_again(client: TestClient) -> None:
    done = wait_for(client, start(client)["id"], "succeeded")
    file_id = upload(client).json()["id"]
    response = client.post("/v1/fine_tuning/jobs", json={"training_file": file_id,
                                                          "model": done["fine_tuned_model"]})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"
    assert response.json()["error"]["code"] == "model_not_fine_tunable"


def test_pages_newest_first(client: TestClient) -> None:
    ids = [start(client)["id"] for _ in range(3)]
    for job_id in ids:
        wait_for(client, job_id, "succeeded")
    first = client.get("/v1/fine_tuning/jobs?limit=2").json()
    assert first["object"] == "list" and first["has_more"] is True
    assert len(first["data"]) == 2
    rest = client.get(f"/v1/fine_tuning/jobs?limit=2&after={first['data'][-1]['id']}").json()
    assert rest["has_more"] is False
    assert sorted(j["id"] for j in first["data"] + rest["data"]) == sorted(ids)
    created = [j["created_at"] for j in first["data"] + rest["data"]]
    assert created == sorted(created, reverse=True)
    assert client.get("/v1/fine_tuning/jobs?limit=0").json()["error"]["param"] == "limit"
    assert client.get("/v1/fine_tuning/jobs?after=ftjob-x").json()["error"]["param"] == "after"


def test_cancel_a_running_job_then_409(client: TestClient,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_TRAIN_DELAY", "30")
    job = start(client)
    wait_for(client, job["id"], "running")
    cancelled = client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished"
    assert client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["status"] == "cancelled"
    assert client.post("/v1/fine_tuning/jobs/ftjob-nope/cancel").status_code == 404


def test_cancel_a_finished_job_is_a_409(client: TestClient) -> None:
    done = wait_for(client, start(client)["id"], "succeeded")
    response = client.post(f"/v1/fine_tuning/jobs/{done['id']}/cancel")
    assert response.status_code == 409


def test_a_queued_job_waits_for_a_slot_and_can_be_cancelled(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_TRAIN_DELAY", "30")
    first = start(client)
    wait_for(client, first["id"], "running")
    second = start(client)  # max_concurrent_jobs is 1
    assert wait_for(client, second["id"], "queued")["status"] == "queued"
    assert client.post(f"/v1/fine_tuning/jobs/{second['id']}/cancel").json()["status"] == \
        "cancelled"
    client.post(f"/v1/fine_tuning/jobs/{first['id']}/cancel")


def test_a_failing_worker_fails_the_job_with_its_last_words(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_TRAIN_FAIL", "1")
    failed = wait_for(client, start(client)["id"], "failed")
    assert failed["error"]["code"] == "training_failed"
    assert "out of memory" in failed["error"]["message"]
    assert failed["fine_tuned_model"] is None


def test_events_stream_over_sse_until_the_job_ends(client: TestClient,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_TRAIN_DELAY", "0.2")
    job = start(client)
    parser, events = EventParser(), []
    with client.stream("GET", f"/v1/fine_tuning/jobs/{job['id']}/events",
                       headers={"accept": "text/event-stream"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for chunk in response.iter_bytes():
            events += list(parser.feed(chunk))
    assert events[-1].data == "[DONE]"
    bodies = [json.loads(e.data) for e in events[:-1]]
    assert [e.id for e in events[:-1]] == [str(i) for i in range(len(bodies))]
    assert bodies[0]["message"].startswith("Created fine-tuning job")
    assert [b["data"]["step"] for b in bodies if b["type"] == "metrics"] == [1, 2, 3]
    assert bodies[-1]["message"].startswith("The job has successfully completed")
    # Again after the end, resumed after an event: the rest, then [DONE].
    resumed = client.get(f"/v1/fine_tuning/jobs/{job['id']}/events",
                         headers={"accept": "text/event-stream", "last-event-id": "2"})
    again = list(EventParser().feed(resumed.content))
    assert [e.id for e in again[:-1]] == [str(i) for i in range(3, len(bodies))]


def test_the_openai_sdk_drives_a_job(client: TestClient) -> None:
    sdk = sdk_for(client)
    file = sdk.files.create(file=("data.jsonl", DATASET), purpose="fine-tune")
    job = sdk.fine_tuning.jobs.create(training_file=file.id, model="scripted", suffix="sdk",
                                      hyperparameters={"n_epochs": 1}, seed=7)
    assert job.status == "validating_files" and job.seed == 7
    assert job.hyperparameters.n_epochs == 1
    wait_for(client, job.id, "succeeded")
    done = sdk.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded" and done.fine_tuned_model is not None
    assert done.fine_tuned_model.startswith("ft:scripted:sdk:")
    assert [j.id for j in sdk.fine_tuning.jobs.list(limit=10)] == [job.id]
    events = list(sdk.fine_tuning.jobs.list_events(job.id, limit=100))
    assert events[0].message.startswith("The job has successfully completed")
    assert {e.type for e in events} == {"message", "metrics"}
    with pytest.raises(openai.ConflictError):
        sdk.fine_tuning.jobs.cancel(job.id)
    with pytest.raises(openai.NotFoundError):
        sdk.fine_tuning.jobs.retrieve("ftjob-nope")
