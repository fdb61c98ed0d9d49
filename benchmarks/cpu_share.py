"""CPU that other processes used while a side was measured.

On a shared 2-core machine a figure taken while someone else's job ran is noise; the report
says so next to it instead of leaving a reader to guess. "Other" is the machine's busy time
minus this process's and its descendants' (the bare engine's children, a server subprocess
and its engine), so it only counts processes this run did not start.
"""

from __future__ import annotations

import time

import psutil


def _busy_s() -> float:
    t = psutil.cpu_times()
    return float(sum(t)) - t.idle - getattr(t, "iowait", 0.0)


def _ours_s() -> float:
    me = psutil.Process()
    total = 0.0
    for proc in (me, *me.children(recursive=True)):
        try:
            t = proc.cpu_times()
        except psutil.Error:  # gone since the listing
            continue
        total += t.user + t.system
    return total


class OtherCpu:
    """Started at construction; `cores()` is the mean number of cores others used since."""

    def __init__(self) -> None:
        self._start = (time.monotonic(), _busy_s(), _ours_s())

    def cores(self) -> float:
        wall = time.monotonic() - self._start[0]
        if wall <= 0:
            return 0.0
        # A descendant that exited within the window takes its time out of "ours": never
        # below zero, and no level here outlives one of its processes.
        others = (_busy_s() - self._start[1]) - (_ours_s() - self._start[2])
        return max(0.0, others / wall)
