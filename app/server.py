"""Serving the app with uvicorn, and what happens on SIGTERM.

Plain uvicorn closes its listening socket the moment SIGTERM arrives, so a load balancer never
sees the replica say it is going: connections are refused while streams drain. Here the first
SIGTERM only starts draining: /ready answers 503 at once and new generations get 503 with
Retry-After, while everything else (streams in flight, reads, resumes) is served as before.
The server stops once no generation is left, or after `drain_timeout_s`. A second SIGTERM, or
Ctrl-C, stops it at once (uvicorn's own graceful shutdown)."""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from app.lifecycle import Lifecycle
from app.settings import Settings

log = logging.getLogger("streamchat")
# What uvicorn still gives open connections once it stops; the drain came first.
GRACEFUL_SHUTDOWN_S = 5


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, drain_timeout_s: float) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.drain_timeout_s = drain_timeout_s
        self.drain_deadline: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.drain_deadline is None and not self.should_exit:
            # Runs in the signal handler: only flags here; on_tick does the rest.
            self.lifecycle.drain()
            self.drain_deadline = time.monotonic() + self.drain_timeout_s
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.lifecycle.failure is not None:
            return True  # nothing can be served without an engine
        if self.drain_deadline is not None and not self.should_exit:
            if counter % 10 == 0:
                log.info("draining: %d generation(s) in flight", self.lifecycle.generations)
            if self.lifecycle.idle or time.monotonic() >= self.drain_deadline:
                log.info("drained; stopping" if self.lifecycle.idle else
                         "drain timeout reached; stopping with generations in flight")
                self.should_exit = True
        return await super().on_tick(counter)


def serve(app: Starlette, settings: Settings, lifecycle: Lifecycle) -> int:
    """Serve until stopped; the process's exit code (1 if the engine failed to start)."""
    config = uvicorn.Config(app, host=settings.host, port=settings.port,
                            log_level=settings.log_level, loop="uvloop", http="httptools",
                            ws="websockets-sansio", ws_max_size=settings.max_body_bytes,
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    DrainingServer(config, lifecycle, settings.drain_timeout_s).run()
    return 1 if lifecycle.failure is not None else 0
