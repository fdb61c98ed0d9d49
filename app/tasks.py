"""Stopping a task and waiting until it has ended: the one way every closer does it.

`task.cancel()` then `with suppress(CancelledError): await task` swallows the caller's own
cancellation along with the task's, so a shutdown that cancels the closer waits on (a
`finally` that goes on as if nothing happened, a loop that waits again). Here the wait is
`asyncio.wait`, which never raises for the task's end, only for the caller's cancellation,
and then at once: `await task` would first forward the cancel to the task and wait for it to
end. Not `current_task().cancelling()` either: it still counts a cancellation already
delivered, so a closer called from the caller's own `finally` would raise for it and skip the
rest of that cleanup."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("streamchat.tasks")

# A cancelled task ends at its next await, at once: one still running 5 s later ignores its
# cancellation (a bug, a blocking call) and is left, so that a shutdown goes on.
STOP_BOUND_S = 5.0


async def cancel_and_wait(task: asyncio.Task[Any], *, bound_s: float | None = None) -> None:
    """Cancel `task` and wait until it has ended; see `wait_ended`."""
    task.cancel()
    await wait_ended(task, bound_s=bound_s)


async def wait_ended(task: asyncio.Task[Any], *, bound_s: float | None = None) -> bool:
    """Wait until `task` (already told to stop) has ended, `bound_s` at most: one that goes on
    past it is left running, logged, and False returned. Its failure is raised here, as
    `await task` would; its cancellation is not. The caller's own cancellation is raised."""
    if not task.done():
        await asyncio.wait({task}, timeout=bound_s)
    if not task.done():
        log.error("task %s still runs %.1f s after it was told to stop: left running",
                  task.get_name(), bound_s)
        return False
    if not task.cancelled() and (exc := task.exception()) is not None:
        raise exc
    return True
