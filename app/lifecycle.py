"""Whether this replica takes new work: loading -> ready (-> restarting -> ready, when its
engine dies: app/engine/supervisor.py) -> draining; or failed (to start, or its engine kept
dying).

The one owner of that answer: `/ready`, every transport that starts a generation, and the
server's SIGTERM handling all ask it. It also counts the generations in progress, so that a
draining replica knows when its last stream has finished, and aborts those still running
when the drain times out."""

from __future__ import annotations

from collections.abc import Callable

from app.engine.base import Engine
from app.errors import Draining, EngineRestarting, NotReady
from app.store_health import StoreHealth

# What a client is told to wait before retrying while the engine loads or the replica drains.
RETRY_AFTER_S = 5.0


class Lifecycle:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.draining = False
        self.failure: str | None = None  # why the engine failed to start, or gave up restarting
        # Set by the engine's supervisor once it first ran: an engine not ready since is one
        # that died and is being restarted, not one still loading.
        self.engine_has_run = False
        # Set while the engine, just started, is timed for the first-token objective
        # (app/admission/calibrate.py): not ready yet, so that no request disturbs the timing.
        self.measuring = False
        self.store: StoreHealth | None = None  # the shared store's (Redis), for /ready
        self.generations = 0
        self.aborting = False  # the drain timed out: generations in progress are being stopped
        self._aborters: set[Callable[[], None]] = set()

    def not_ready_reason(self) -> str | None:
        if self.draining:
            return "draining"
        if self.failure is not None:
            return "the engine failed" if self.engine_has_run else "the engine failed to start"
        if not self.engine.ready:
            return "the engine is restarting" if self.engine_has_run else "the engine is loading"
        if self.measuring:
            return "the engine is being measured"
        return None

    @property
    def restarting(self) -> bool:
        """The engine died and a new one is starting (503 `engine_restarting` meanwhile)."""
        return self.engine_has_run and self.failure is None and not self.engine.ready

    def ready_reason(self) -> str | None:
        """Why /ready answers 503: a reason of `not_ready_reason`, or the shared store
        unreachable (app/store_health.py). Only /ready asks the store's: what needs the store
        answers 503 `store_unavailable` itself, and what does not goes on."""
        reason = self.not_ready_reason()
        if reason is None and self.store is not None and not self.store.up:
            reason = f"the shared store (Redis) is unreachable ({self.store.unreachable})"
        return reason

    def check_accepting(self) -> None:
        """Raise NotReady (503 with Retry-After) unless a new generation may start."""
        reason = self.not_ready_reason()
        if reason is not None:
            error = (Draining if self.draining
                     else EngineRestarting if self.restarting else NotReady)
            raise error(f"not ready: {reason}; retry later", retry_after_s=RETRY_AFTER_S)

    def drain(self) -> None:
        """Stop taking new generations; those in progress go on."""
        self.draining = True

    def on_abort(self, aborter: Callable[[], None]) -> Callable[[], None]:
        """Call `aborter` if the drain times out; returns the function that unregisters it."""
        self._aborters.add(aborter)
        return lambda: self._aborters.discard(aborter)

    def abort_all(self) -> None:
        """The drain timed out: stop every generation still running (each stores its reply)."""
        self.aborting = True
        for aborter in list(self._aborters):
            aborter()

    @property
    def idle(self) -> bool:
        return self.generations == 0

    def started(self) -> None:
        self.generations += 1

    def ended(self) -> None:
        self.generations -= 1
