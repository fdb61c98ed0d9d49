"""Runs fine-tuning jobs: each in its own worker process (`worker.py` running `train.py`), at
most `max_concurrent` at a time (the others wait `queued`, first come first served), its
steps turned into events, its adapter handed to serving when it succeeds (app/adapters/: with
Redis, every replica's engine serves it within seconds, and after any restart).

Jobs outlive the process (`store.py`), the processes do not. A job runs under its lease
(app/leases/, kind `job`), taken before the job is stored and let go of once it has ended. A
job stored unfinished whose lease nobody holds was left by a process that stopped: it is marked
failed, on start (`start`) and whenever it is read (queued ones included: re-running them
silently hours later surprises more than a clear failure: start it again). In memory mode that
is every such job after a restart; with Redis, those of a replica that died, once its lease ran
out. On shutdown (`close`) running jobs are killed and marked failed ("the service stopped").
`cancel` stores the job cancelled, then stops it through its lease, here or on the replica
running it; that replica also stops a job whose stored status is no longer `running` at its
next step (a relayed cancel is not kept for a replica that is not listening)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

from app.errors import Conflict, StreamchatError
from app.finetune import job as jobs
from app.finetune.files import FileStore
from app.finetune.store import Job, JobStore
from app.finetune.worker import Worker
from app.leases import JOB, Leases, MemoryLeaseStore

log = logging.getLogger("streamchat.finetune")

TRAIN_COMMAND = (sys.executable, "-m", "app.finetune.train")


class AdapterRegistry(Protocol):
    """What serving offers for adapters (`app.adapters.Adapters`)."""

    async def add(self, name: str, path: Path) -> Any: ...

    async def remove(self, name: str) -> None: ...

    def get(self, name: str) -> Any | None: ...


class JobManager:
    def __init__(self, store: JobStore, files: FileStore, *, base_model: str, adapters_dir: Path,
                 max_concurrent: int = 1, leases: Leases | None = None,
                 adapters: AdapterRegistry | None = None,
                 train_command: Sequence[str] | None = None) -> None:
        self.store = store
        self.files = files
        self.base_model = base_model  # the base weights' folder (or hub id) to train on
        self.adapters_dir = adapters_dir
        # Which replica runs each job (the service's own, shared with its other work).
        self.leases = leases if leases is not None else Leases(MemoryLeaseStore())
        self.leases.serve(JOB, self._stop)
        # + the job's config file; TRAIN_COMMAND read now, so that tests can swap in a fake
        self.train_command = tuple(train_command or TRAIN_COMMAND)
        self.adapters = adapters  # where a succeeded job's adapter is served
        self._slots = asyncio.Semaphore(max_concurrent)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._workers: dict[str, Worker] = {}

    async def start(self) -> None:
        """Fails what a stopped process left unfinished; hears cancels from other replicas."""
        await self.leases.start()
        for record in await self.store.all():
            await self._current(record)

    async def restore_adapters(self) -> list[str]:
        """Serves the adapters of the jobs that succeeded before this process started: call
        once the engine has started, in memory mode (with Redis, the adapters' shared registry
        lists them already, and an adapter unloaded through the API stays unloaded). The
        names served again; an adapter that fails to load is logged and skipped."""
        adapters, restored = self.adapters, list[str]()
        if adapters is None:
            return restored
        for record in await self.store.all():
            job = record["job"]
            path = self.adapters_dir / job["id"]
            if job["status"] != "succeeded" or not job["fine_tuned_model"] or adapters.get(
                    job["fine_tuned_model"]) is not None:
                continue
            try:
                await adapters.add(job["fine_tuned_model"], path)
                restored.append(job["fine_tuned_model"])
            except StreamchatError as exc:
                log.warning("fine-tuned model %s not served: %s", job["fine_tuned_model"],
                            exc.message)
        return restored

    async def create(self, req: jobs.JobRequest, base: str, owner: str | None) -> Job:
        job = jobs.new_job(req, base, owner)
        # Its lease first: another replica must never find it stored and unheld.
        await self.leases.acquire(JOB, job["id"], job["id"])
        try:
            await self.store.create(job, owner)
        except BaseException:
            await self.leases.release(JOB, job["id"], job["id"])
            raise
        await self.store.add_event(job["id"], jobs.event(f"Created fine-tuning job: {job['id']}"))
        self._tasks[job["id"]] = asyncio.create_task(self._run(job["id"]))
        return job

    async def get(self, job_id: str, owner: str | None) -> Job:
        return await self._current(await self.store.record(job_id, owner))

    async def all(self, owner: str | None) -> list[Job]:
        return [await self._current(r) for r in await self.store.all(owner)]

    async def cancel(self, job_id: str, owner: str | None) -> Job:
        job = await self.get(job_id, owner)
        if job["status"] in jobs.FINAL:
            raise Conflict(f"fine-tuning job {job_id} has already {job['status']}",
                           param="fine_tuning_job_id", code="job_finished")
        await self._finish(job_id, "cancelled", "The job was cancelled")
        await self.leases.cancel(JOB, job_id)
        return await self.get(job_id, owner)

    async def _stop(self, job_id: str) -> None:
        """A job run here, stopped (for `cancel`, here or relayed from another replica)."""
        task, worker = self._tasks.get(job_id), self._workers.get(job_id)
        if worker is not None:
            await worker.kill()
        elif task is not None:
            task.cancel()

    async def close(self) -> None:
        """Kills the running jobs and fails every unfinished one of this process."""
        tasks = dict(self._tasks)  # each task removes itself as it ends
        for job_id, task in tasks.items():
            worker = self._workers.get(job_id)
            await self._finish(job_id, "failed", "The service stopped", error=jobs.error(
                "service_stopped", "the service stopped while this job was "
                + ("running" if worker is not None else "waiting to run")))
            if worker is not None:
                await worker.kill()
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)

    async def _run(self, job_id: str) -> None:
        try:
            job = (await self.store.record(job_id))["job"]
            training_file = await self.files.local(job["training_file"])
            if training_file is None:
                await self._finish(job_id, "failed", "The job failed", error=jobs.error(
                    "invalid_training_file", "the training file was deleted", "training_file"))
                return
            job = await self.store.update(job_id, status="queued")
            await self.store.add_event(job_id, jobs.event("Files validated, moving job to "
                                                          "queued state"))
            async with self._slots:
                if (await self.store.record(job_id))["job"]["status"] == "queued":
                    await self._train(job, training_file)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a bug: the job says so rather than staying `running`
            log.exception("fine-tuning job %s crashed", job_id)
            await self._finish(job_id, "failed", "The job failed",
                               error=jobs.error("internal_error", f"internal error: {exc}"))
        finally:
            self._tasks.pop(job_id, None)
            self._workers.pop(job_id, None)
            await self.leases.release(JOB, job_id, job_id)

    async def _train(self, job: Job, training_file: Path) -> None:
        job_id, hyper = job["id"], job["hyperparameters"]
        output = self.adapters_dir / job_id
        config = self.adapters_dir / ".jobs" / f"{job_id}.json"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_bytes(orjson.dumps({
            "model": self.base_model, "training_file": str(training_file),
            "output_dir": str(output), "n_epochs": hyper["n_epochs"],
            "batch_size": hyper["batch_size"], "seed": job["seed"],
            "learning_rate": jobs.BASE_LEARNING_RATE * hyper["learning_rate_multiplier"]}))
        worker = self._workers[job_id] = Worker([*self.train_command, str(config)])
        await self.store.update(job_id, status="running")
        await self.store.add_event(job_id, jobs.event("Fine-tuning job started"))
        await worker.start()
        trained_tokens = 0
        async for line in worker.lines():
            if "step" in line:
                trained_tokens = int(line.get("tokens", trained_tokens))
                await self.store.add_event(job_id, jobs.metrics_event(line))
                updated = await self.store.update(job_id, trained_tokens=trained_tokens,
                                                  estimated_finish=int(time.time() + line["eta_s"]))
                if updated["status"] != "running":  # cancelled on another replica
                    await worker.kill()
            elif "message" in line:
                await self.store.add_event(job_id, jobs.event(str(line["message"])))
        code = await worker.wait()
        if (await self.store.record(job_id))["job"]["status"] != "running":
            return  # cancelled, or the service is stopping: already ended
        if code != 0:
            await self._finish(job_id, "failed", "The job failed", error=jobs.error(
                "training_failed", f"training stopped (exit code {code}): {worker.last_error()}"))
            return
        name = jobs.fine_tuned_name(job["model"], job["user_provided_suffix"], job_id)
        if self.adapters is not None:
            try:
                await self.adapters.add(name, output)
            except StreamchatError as exc:
                await self._finish(job_id, "failed", "The job failed", error=jobs.error(
                    "adapter_not_served", f"the adapter could not be served: {exc.message}"))
                return
        await self._finish(job_id, "succeeded", f"The job has successfully completed: "
                           f"{name}", fine_tuned_model=name, trained_tokens=trained_tokens,
                           estimated_finish=None)

    async def _finish(self, job_id: str, status: str, message: str, **changes: Any) -> None:
        """Ends the job: its last event first, then its status (store.py says why)."""
        level = "info" if status == "succeeded" else "error" if status == "failed" else "warn"
        current = (await self.store.record(job_id))["job"]
        if current["status"] in jobs.FINAL:
            return
        if changes.get("error"):
            message = f"{message}: {changes['error']['message']}"
        await self.store.add_event(job_id, jobs.event(message, level=level))
        await self.store.update(job_id, status=status, finished_at=int(time.time()), **changes)

    async def _interrupted(self, job_id: str, status: str) -> None:
        await self._finish(job_id, "failed", "The job failed", error=jobs.error(
            "interrupted", f"the service running this job stopped while it was {status}; "
            "start a new job"))

    async def _current(self, record: dict[str, Any]) -> Job:
        """The job, failed first when nobody runs it any more (its process stopped)."""
        job: Job = record["job"]
        if job["status"] not in jobs.FINAL and await self.leases.gone(JOB, job["id"]):
            # `_finish` reads it again: one that ended just before its lease is left as it is.
            await self._interrupted(job["id"], job["status"])
            job = (await self.store.record(job["id"]))["job"]
        return job
