"""Fine-tuning jobs across restarts (memory mode keeps them on disk in the cache folder): a job
the previous process left running is failed on start, one running at shutdown is killed and
failed, a succeeded one keeps its events and its adapter is served again (`restore_adapters`).
Across two replicas sharing Redis: a job runs under its lease (app/leases/), is failed once
the lease of a replica that died ran out, and is cancelled through the other replica. And the
worker process: lower CPU priority, few threads, killed as a group."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.api.http.state import Services
from app.finetune.files import FileStore
from app.finetune.job import JobRequest
from app.finetune.manager import JobManager
from app.finetune.store import JobStore
from app.finetune.worker import NICENESS, Worker
from app.leases import JOB, Leases
from app.main import create_app
from app.records import DiskRecords, RedisRecords
from tests.fakes import ScriptedEngine
from tests.finetune_fixtures import DATASET, fake_training, settings_for, upload, wait_for
from tests.redis_server import RedisServer

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


class Replica:
    """One replica's job manager over the shared Redis: its own client, records and leases."""

    def __init__(self, url: str, folder: Path) -> None:
        from redis.asyncio import Redis

        from app.leases.redis import RedisLeaseStore

        self.redis = Redis.from_url(url)
        records = RedisRecords(self.redis, idle_ttl_s=None)
        self.leases = Leases(RedisLeaseStore(self.redis))
        self.jobs = JobManager(JobStore(records), FileStore(records, folder / "files", 10**6),
                               base_model="scripted", adapters_dir=folder / "adapters",
                               leases=self.leases)

    async def close(self) -> None:
        await self.jobs.close()
        await self.leases.close()
        await self.redis.aclose()


@pytest.fixture
async def replicas(redis_server: RedisServer, tmp_path: Path,
                   fake_training: None) -> AsyncIterator[tuple[Replica, Replica]]:
    redis_server.flush()
    a, b = Replica(redis_server.url, tmp_path), Replica(redis_server.url, tmp_path)
    await a.jobs.start()
    await b.jobs.start()
    yield a, b
    await a.close()
    await b.close()


async def status_of(replica: Replica, job_id: str, *statuses: str) -> dict[str, Any]:
    """The job as `replica` reads it, once its status is one of `statuses` (5 s at most): a
    job is changed by another process's lines, or by time (a lease running out)."""
    async with asyncio.timeout(5):
        while (job := await replica.jobs.get(job_id, None))["status"] not in statuses:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return job


async def test_a_job_is_failed_once_the_lease_of_its_dead_replica_ran_out(
        replicas: tuple[Replica, Replica]) -> None:
    dead, alive = replicas
    job = {"id": "ftjob-dead", "object": "fine_tuning.job", "status": "running",
           "created_at": 1, "model": "scripted", "fine_tuned_model": None, "error": None,
           "finished_at": None}
    await dead.leases.store.acquire(JOB, job["id"], job["id"], 0.3)  # then it died
    await dead.jobs.store.create(job, None)
    assert (await alive.jobs.get(job["id"], None))["status"] == "running"  # its lease holds
    failed = await status_of(alive, job["id"], "failed")
    assert failed["error"]["code"] == "interrupted"


async def test_a_job_is_cancelled_through_the_other_replica(
        replicas: tuple[Replica, Replica], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = replicas
    monkeypatch.setenv("FAKE_TRAIN_DELAY", "30")
    file = await a.jobs.files.create("data.jsonl", "fine-tune", DATASET, None)
    job = await a.jobs.create(JobRequest(training_file=file["id"], model="scripted"),
                              "scripted", None)
    await status_of(b, job["id"], "running")
    worker = a.jobs._workers[job["id"]]
    assert await b.leases.holder(JOB, job["id"]) == job["id"]
    cancelled = await asyncio.wait_for(b.jobs.cancel(job["id"], None), 10)
    assert cancelled["status"] == "cancelled"
    # Its replica killed the worker and let go of the lease before cancel returned.
    assert worker.process is not None and worker.process.returncode is not None
    assert await b.leases.holder(JOB, job["id"]) is None


async def test_the_worker_runs_niced_with_few_threads_and_is_killed_as_a_group() -> None:
    # Its first thread and one it starts (as torch does) are both niced: niceness is per thread.
    probe = ("import json, os, subprocess, sys, threading, time; seen = []; "
             "thread = threading.Thread(target=lambda: seen.append(os.getpriority("
             "os.PRIO_PROCESS, threading.get_native_id()))); thread.start(); thread.join(); "
             "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
             "print(json.dumps({'nice': os.nice(0), 'thread_nice': seen[0], "
             "'omp': os.environ['OMP_NUM_THREADS'], 'child': child.pid}), flush=True); "
             "time.sleep(60)")
    worker = Worker([sys.executable, "-c", probe], threads=1)
    await worker.start()
    line = await anext(worker.lines())
    assert line["nice"] == line["thread_nice"] == min(19, os.nice(0) + NICENESS)
    assert line["omp"] == "1"
    await asyncio.wait_for(worker.kill(), 30)  # bounded: SIGTERM, then SIGKILL after the grace
    # It stopped at SIGTERM, within the grace: the group was signalled, not waited out.
    assert worker.process is not None and worker.process.returncode == -signal.SIGTERM
    for _ in range(200):  # its own child went with it (reaped by its init: bounded wait)
        if not alive(line["child"]):
            break
        await asyncio.sleep(0.05)
    assert not alive(line["child"])


def alive(pid: int) -> bool:
    """Running, not a zombie left for an init that does not reap (as in some containers)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
