"""The orphan grace: work that writes a `ReplyLog` survives its listeners for a while.

After the last listener of a log left, the work goes on for `grace_s`, so that a client that
reconnects resumes it; if nobody follows the log again by then, here or on another replica, it
is abandoned (its owner cancels it). Session replies (app/replies/live.py) and detached OpenAI
streams (app/replies/detached.py) both use it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from app.errors import StoreUnavailable
from app.streams import ReplyLog, ReplyLogs

log = logging.getLogger("streamchat.replies")


class _Watch:
    def __init__(self, grace: OrphanGrace, reply_log: ReplyLog, running: Callable[[], bool],
                 abandon: Callable[[], None]) -> None:
        self.grace = grace
        self.log = reply_log
        self.running = running
        self.abandon = abandon
        self.timer: asyncio.TimerHandle | None = None

    def orphaned(self) -> None:
        if not self.running():
            return
        self.stop()
        self.timer = asyncio.get_running_loop().call_later(self.grace.grace_s, self._due)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _due(self) -> None:
        self.timer = None
        if self.log.listeners == 0 and self.running():
            self.grace.hold(asyncio.create_task(self._abandon_unless_watched()))

    async def _abandon_unless_watched(self) -> None:
        try:
            watched = await self.grace.logs.watched_elsewhere(self.log.message_id)
        except StoreUnavailable:  # Redis away: nobody can follow it from elsewhere either
            watched = False
        if watched:
            self.orphaned()  # a listener on another replica: look again after the grace
            return
        if self.log.listeners == 0 and self.running():
            log.info("reply %s: no listener for %.1f s, aborting", self.log.message_id,
                     self.grace.grace_s)
            self.abandon()


class OrphanGrace:
    def __init__(self, logs: ReplyLogs, grace_s: float) -> None:
        self.logs = logs
        self.grace_s = grace_s
        self._checks: set[asyncio.Task[None]] = set()

    def watch(self, reply_log: ReplyLog, running: Callable[[], bool],
              abandon: Callable[[], None], *, orphaned_now: bool = False) -> Callable[[], None]:
        """Call `abandon` once `reply_log` has had no listener for the grace (while `running`);
        with `orphaned_now`, the grace starts at once (no listener may ever come). Returns
        what stops the watch (the work ended)."""
        watch = _Watch(self, reply_log, running, abandon)
        reply_log.on_orphaned = watch.orphaned
        reply_log.on_listener = watch.stop
        if orphaned_now:
            watch.orphaned()
        return watch.stop

    def hold(self, task: asyncio.Task[None]) -> None:
        """Keep a check's task until it is done: the loop keeps only weak references."""
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)
