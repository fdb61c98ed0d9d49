"""The one owner of "is the engine alive": it starts the engine, notices when it dies, starts a
new one in this process, and gives up after too many deaths.

Why in place: a new engine in the same process keeps everything that wraps it (sessions in
memory, the admission gate, LoRA adapters, reply logs, parsers), which an exit and a restart by
the orchestrator would lose, and the replica is back in one engine start (~20-50 s on 2 cores).

How a death is noticed: `engine.died()` returns (for vLLM: its output handler ends, which
happens the moment a thread watching the core process sees it gone), with or without a request
in flight. Streams in flight fail by themselves (EngineFailure: an `error` event); new
generations get 503 `engine_restarting` meanwhile (app/lifecycle.py). A restart that fails
counts as one more death. At `max_deaths` within `window_s` it gives up: `lifecycle.failure`
is set, /health answers 503 and the server exits 1 (app/server.py), for the orchestrator to
replace the replica."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from app import metrics
from app.engine.base import Engine
from app.lifecycle import Lifecycle

log = logging.getLogger("streamchat.engine")


class EngineSupervisor:
    def __init__(self, engine: Engine, lifecycle: Lifecycle, *,
                 started: Callable[[], Awaitable[None]],
                 restarted: Callable[[], Awaitable[None]],
                 max_deaths: int = 3, window_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`started` runs after the first start (what a failure of stops the service),
        `restarted` after each restart (what the new engine must be given again)."""
        self.engine = engine
        self.lifecycle = lifecycle
        self._started = started
        self._restarted = restarted
        self.max_deaths = max_deaths
        self.window_s = window_s
        self._clock = clock
        self.deaths: deque[float] = deque()  # when each death within the window was noticed

    async def run(self) -> None:
        """The engine's whole life: until cancelled, given up, or a death while draining."""
        try:
            await self.engine.start()
            await self._started()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Nothing useful can be served without an engine: the server stops, exit code 1.
            self.lifecycle.failure = str(exc)
            log.error("%s", exc)
            return
        self.lifecycle.engine_has_run = True
        while True:
            await self.engine.died()
            if self.lifecycle.draining:  # the server stops once its streams have failed
                log.error("engine: died while draining; not restarted")
                return
            if not self._count_death("died: its core process is gone"):
                return
            while not await self._restart():
                if not self._count_death("failed to restart"):
                    return

    def _count_death(self, what: str) -> bool:
        """Count one death; False when it is one too many (the supervisor gives up)."""
        now = self._clock()
        self.deaths.append(now)
        while self.deaths and self.deaths[0] <= now - self.window_s:
            self.deaths.popleft()
        metrics.ENGINE_DEATHS.inc()
        if len(self.deaths) < self.max_deaths:
            log.error("engine: %s; restarting it (%d death(s) within %.0f s; at %d the "
                      "process exits)", what, len(self.deaths), self.window_s, self.max_deaths)
            return True
        self.lifecycle.failure = (f"the engine died {len(self.deaths)} times within "
                                  f"{self.window_s:.0f} s")
        log.critical("engine: %s; %s: giving up, the process exits for its orchestrator to "
                     "replace it", what, self.lifecycle.failure)
        return False

    async def _restart(self) -> bool:
        began = time.monotonic()
        # app/main.py froze everything alive after the first start, this engine included:
        # unfrozen, the dead engine's reference cycles can be collected once it is dropped.
        gc.unfreeze()
        try:
            await self.engine.restart()
            await self._restarted()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("engine: the restart failed after %.1f s: %s",
                      time.monotonic() - began, exc)
            return False
        metrics.ENGINE_RESTARTS.inc()
        log.warning("engine: restarted in %.1f s; ready again", time.monotonic() - began)
        return True
