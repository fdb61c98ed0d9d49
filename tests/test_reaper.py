"""The engine reaper: engine processes die with the service, and only they do."""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from app.engine.reaper import EngineReaper, Spawned
from app.engine.vllm import VllmEngine

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs pidfds (Linux)")

ROOT = Path(__file__).resolve().parent.parent
SLEEPER = [sys.executable, "-c", "import time; time.sleep(300)"]

# A stand-in for the service: two engine-like children, guarded, then wait to be killed.
SERVICE = """
import json, subprocess, sys, time
from app.engine.reaper import EngineReaper
sleepers = [subprocess.Popen(json.loads(sys.argv[1])) for _ in range(2)]
reaper = EngineReaper.guard([p.pid for p in sleepers])
print(json.dumps({"children": [p.pid for p in sleepers], "reaper": reaper.pid}), flush=True)
time.sleep(300)
"""


def exited(pidfd: int, timeout: float) -> bool:
    """Whether the process behind this pidfd exits within `timeout` (a pidfd polls readable)."""
    return bool(select.select([pidfd], [], [], timeout)[0])


@pytest.fixture
def pidfds() -> Iterator[list[int]]:
    """pidfds the test opens; whatever they name is SIGKILLed and closed at the end."""
    fds: list[int] = []
    yield fds
    for fd in fds:
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.close(fd)


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Long-sleeping children of the test; killed and reaped at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()


async def test_shutdown_after_failed_start_does_not_raise() -> None:
    engine = VllmEngine(engine_args=SimpleNamespace(model="x"), model_name="x")
    await engine.shutdown()
    await engine.shutdown()


def test_sigkilled_service_takes_its_guarded_processes_along(pidfds: list[int]) -> None:
    service = subprocess.Popen([sys.executable, "-c", SERVICE, json.dumps(SLEEPER)], cwd=ROOT,
                               stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert service.stdout is not None
        started = json.loads(service.stdout.readline())
        # Unreaped children of the live service: these PIDs cannot have been reused yet.
        pidfds.extend(os.pidfd_open(pid) for pid in [*started["children"], started["reaper"]])
        service.kill()  # SIGKILL, the service only
        service.wait()
        deadline = time.monotonic() + 5
        for fd in pidfds:
            assert exited(fd, max(0.0, deadline - time.monotonic())), "a process outlived the service"
    finally:
        service.kill()
        service.wait()
        if service.stdout is not None:
            service.stdout.close()


def test_release_ends_the_reaper(sleepers: list[subprocess.Popen[bytes]]) -> None:
    sleepers.extend(subprocess.Popen(SLEEPER) for _ in range(2))
    reaper = EngineReaper.guard([p.pid for p in sleepers])
    assert reaper is not None
    for proc in sleepers:  # their owner stops them, as vLLM's own shutdown does
        proc.terminate()
        proc.wait()
    assert reaper.release(timeout=2) == 0  # it ended by itself: one still running after 2 s is killed (-9)
    assert reaper.release() == 0  # twice is harmless


def test_a_pidfd_of_an_exited_process_is_harmless(sleepers: list[subprocess.Popen[bytes]]) -> None:
    short = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    reaper = EngineReaper.guard([short.pid])
    assert reaper is not None
    assert short.wait(timeout=10) == 0  # exited and reaped before the lifeline ends
    sleepers.append(subprocess.Popen(SLEEPER))  # not guarded: may take the freed PID
    assert reaper.release(timeout=2) == 0
    # Nothing may happen: waiting for it to die, bounded, is the only way to say so.
    with pytest.raises(subprocess.TimeoutExpired):  # else the reaper killed what it was not given
        sleepers[0].wait(timeout=0.2)


def test_without_pidfds_no_reaper_and_one_warning(monkeypatch: pytest.MonkeyPatch,
                                                  sleepers: list[subprocess.Popen[bytes]],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    sleepers.append(subprocess.Popen(SLEEPER))
    monkeypatch.delattr(os, "pidfd_open")
    spawned: list[object] = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **kw: spawned.append(a))
    with caplog.at_level(logging.WARNING, logger="app.engine.reaper"):
        assert EngineReaper.guard([sleepers[0].pid]) is None
    assert spawned == []
    assert len([r for r in caplog.records if "may leave" in r.getMessage()]) == 1


def test_a_forked_child_does_not_hold_the_lifeline(sleepers: list[subprocess.Popen[bytes]]) -> None:
    sleepers.append(subprocess.Popen(SLEEPER))
    reaper = EngineReaper.guard([sleepers[0].pid])
    assert reaper is not None
    child = os.fork()  # e.g. multiprocessing's "fork": no exec, so inheritability is moot
    if child == 0:
        time.sleep(10)
        os._exit(0)
    try:
        assert reaper.release(timeout=2) == 0  # a held write end would keep the lifeline open
    finally:
        os.kill(child, signal.SIGKILL)  # our unreaped child: its PID cannot be reused
        os.waitpid(child, 0)


# A stand-in for an engine core: starts a worker, says its PID, and waits to be killed.
CORE = """
import subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print(worker.pid, flush=True)
time.sleep(300)
"""


def test_what_a_failed_start_left_under_init_is_killed(pidfds: list[int]) -> None:
    spawned = Spawned()
    core = subprocess.Popen([sys.executable, "-c", CORE], stdout=subprocess.PIPE)
    try:
        assert core.stdout is not None
        worker = int(core.stdout.readline())
        pidfds.append(os.pidfd_open(worker))
        assert {p.pid for p in spawned.look()} == {core.pid, worker}
        core.kill()  # as the OOM killer would, while it loads: its worker runs on, orphaned
        core.wait()
        assert worker not in {p.pid for p in psutil.Process().children(recursive=True)}
        spawned.kill()
        assert exited(pidfds[0], 5), "the orphaned worker outlived the failed start"
    finally:
        core.kill()
        core.wait()
        if core.stdout is not None:
            core.stdout.close()
