"""One training process: started in its own process group at a lower CPU priority with few
torch threads, so the serving event loop and the engine keep the CPU a chat needs; its stdout
read as JSON lines (one per training step, `train.py`); killed as a group.

Why a process and not a thread: training holds the GIL for long stretches between torch
calls, and a crash (out of memory) must not take the service with it. Why `nice(1)` execs
the command rather than `setpriority` from the parent: the child is already running once the
spawn returns, so a parent descheduled on a busy machine reniced it after its first threads had
started at the service's priority (seen under load in the tests); and `preexec_fn` is not safe
after fork in a threaded process (the serving process has the engine's threads). A process that
starts niced runs every thread it ever makes niced."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

log = logging.getLogger("streamchat.finetune")

NICENESS = 10  # added to the service's own
KILL_GRACE_S = 5.0


def training_threads() -> int:
    """Torch threads for a job: half the cores, at least one (a 2-core box keeps one core for
    chat; with one thread a LoRA step on the default model takes about 2 s there)."""
    return max(1, (os.cpu_count() or 2) // 2)


class Worker:
    def __init__(self, command: Sequence[str], *, threads: int | None = None) -> None:
        self.command = list(command)
        self.threads = threads or training_threads()
        self.process: asyncio.subprocess.Process | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._stderr_reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads),
               "STREAMCHAT_TRAIN_THREADS": str(self.threads), "PYTHONUNBUFFERED": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        self.process = await asyncio.create_subprocess_exec(
            "nice", "-n", str(NICENESS), *self.command, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
            start_new_session=True)
        self._stderr_reader = asyncio.create_task(self._read_stderr())

    async def lines(self) -> AsyncIterator[dict[str, Any]]:
        """The process's JSON lines as they come (anything else on stdout is logged)."""
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                log.debug("training output: %s", raw.decode(errors="replace").rstrip())
                continue
            if isinstance(line, dict):
                yield line

    async def wait(self) -> int:
        assert self.process is not None
        code = await self.process.wait()
        if self._stderr_reader is not None:
            await self._stderr_reader
        return code

    async def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for raw in self.process.stderr:
            text = raw.decode(errors="replace").rstrip()
            if text:
                self.stderr_tail.append(text)

    def last_error(self) -> str:
        """What the process said last on stderr (a traceback's last line), for the job's error."""
        return self.stderr_tail[-1] if self.stderr_tail else "no output"

    async def kill(self) -> None:
        """Stops the whole process group: SIGTERM, then SIGKILL after a grace period."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()), KILL_GRACE_S)
                return
            except TimeoutError:
                continue
