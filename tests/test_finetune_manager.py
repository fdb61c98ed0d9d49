"""Fine-tuning jobs across restarts (memory mode keeps them on disk in the cache folder): a job
the previous process left running is failed on start, one running at shutdown is killed and
failed, a succeeded one keeps its events and its adapter is served again (`restore_adapters`).
And the worker process: lower CPU priority, few threads, killed as a group."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from app.api.http.state import Services
from app.finetune.worker import NICENESS, Worker
from app.main import create_app
from app.sessions.disk_records import DiskRecords
from tests.fakes import ScriptedEngine
from tests.finetune_fixtures import fake_training, settings_for, upload, wait_for

__all__ = ["fake_training"]


def services(client: TestClient) -> Services:
    return client.app_state["services"]  # type: ignore[no-any-return]


def test_a_job_left_running_by_a_dead_process_is_failed_on_start(
        tmp_path: Path, fake_training: None) -> None:
    records = DiskRecords(tmp_path / "finetune")
    job = {"id": "ftjob-dead", "object": "fine_tuning.job", "status": "running",
           "created_at": 1, "model": "scripted", "fine_tuned_model": None, "error": None,
           "finished_at": None}
    asyncio.run(records.put("fine_tuning.job", "ftjob-dead",
                            {"job": job, "owner": None, "heartbeat_at": time.time()}))
    with TestClient(create_app(settings_for(tmp_path), ScriptedEngine())) as client:
        found = client.get("/v1/fine_tuning/jobs/ftjob-dead").json()
        assert found["status"] == "failed" and found["error"]["code"] == "interrupted"
        assert "stopped while it was running" in found["error"]["message"]
        events = client.get("/v1/fine_tuning/jobs/ftjob-dead/events").json()["data"]
        assert events[0]["level"] == "error"


def test_a_running_job_is_killed_at_shutdown_and_stays_failed(
        tmp_path: Path, fake_training: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_TRAIN_DELAY", "30")
    with TestClient(create_app(settings_for(tmp_path), ScriptedEngine())) as client:
        file_id = upload(client).json()["id"]
        job = client.post("/v1/fine_tuning/jobs", json={"training_file": file_id,
                                                         "model": "scripted"}).json()
        wait_for(client, job["id"], "running")
        worker = services(client).fine_tuning._workers[job["id"]]  # type: ignore[union-attr]
        assert worker.process is not None
        pid = worker.process.pid
    assert not alive(pid)  # the worker is gone with the service
    with TestClient(create_app(settings_for(tmp_path), ScriptedEngine())) as client:
        found = client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()
        assert found["status"] == "failed" and found["error"]["code"] == "service_stopped"
        assert client.get(f"/v1/files/{file_id}").status_code == 200


def test_a_succeeded_job_is_served_again_after_a_restart(tmp_path: Path,
                                                         fake_training: None) -> None:
    with TestClient(create_app(settings_for(tmp_path), ScriptedEngine())) as client:
        file_id = upload(client).json()["id"]
        job = client.post("/v1/fine_tuning/jobs", json={"training_file": file_id,
                                                         "model": "scripted"}).json()
        done = wait_for(client, job["id"], "succeeded")
        events = client.get(f"/v1/fine_tuning/jobs/{job['id']}/events?limit=100").json()
    assert (tmp_path / "adapters" / job["id"] / "adapter_config.json").is_file()
    with TestClient(create_app(settings_for(tmp_path), ScriptedEngine())) as client:
        assert client.get(f"/v1/fine_tuning/jobs/{job['id']}").json() == done
        assert client.get(f"/v1/fine_tuning/jobs/{job['id']}/events?limit=100").json() == events
        # Served again as soon as the engine started, by the lifespan: no call needed.
        served = [m["id"] for m in client.get("/v1/models").json()["data"]]
        for _ in range(100):
            if done["fine_tuned_model"] in served:
                break
            time.sleep(0.02)
            served = [m["id"] for m in client.get("/v1/models").json()["data"]]
        assert done["fine_tuned_model"] in served
        manager = services(client).fine_tuning
        assert manager is not None
        assert client.portal.call(manager.restore_adapters) == []  # already served


async def test_the_worker_runs_niced_with_few_threads_and_is_killed_as_a_group() -> None:
    probe = ("import json, os, subprocess, sys, time; "
             "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
             "print(json.dumps({'nice': os.nice(0), 'omp': os.environ['OMP_NUM_THREADS'], "
             "'child': child.pid}), flush=True); time.sleep(60)")
    worker = Worker([sys.executable, "-c", probe], threads=1)
    await worker.start()
    line = await anext(worker.lines())
    assert line["nice"] == min(19, os.nice(0) + NICENESS) and line["omp"] == "1"
    started = time.monotonic()
    await worker.kill()
    assert time.monotonic() - started < 5
    assert worker.process is not None and worker.process.returncode is not None
    await asyncio.sleep(0.2)
    assert not alive(line["child"])  # its own child went with it


def alive(pid: int) -> bool:
    """Running, not a zombie left for an init that does not reap (as in some containers)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
