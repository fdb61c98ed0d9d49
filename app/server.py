"""Serving the app with uvicorn, and what happens on SIGTERM.

Plain uvicorn closes its listening socket the moment SIGTERM arrives, so a load balancer never
sees the replica say it is going: connections are refused while streams drain. Here the first
SIGTERM only starts draining: /ready answers 503 at once and new generations get 503 with
Retry-After, while everything else (streams in flight, reads, resumes) is served as before.
The server stops once no generation is left. At `drain_timeout_s` the generations still running
are aborted (session replies are stored as cancelled and end with an `error` event, OpenAI
streams with an error chunk), and the server stops once they are stored. A second SIGTERM, or
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
# After the drain timeout, how long aborted generations get to store their replies.
ABORT_GRACE_S = 5.0
# How long an idle keep-alive connection stays open. Longer than clients keep theirs (httpx, so
# the openai SDK: 5 s; Node: 4-5 s), so that the client closes first: at uvicorn's default 5 s,
# a request sent on a pooled connection just as the server closes it is lost (httpx raises
# ReadError). nginx's upstream keepalive_timeout (deploy/) stays below it for the same reason.
KEEP_ALIVE_S = 75


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, drain_timeout_s: float) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.drain_timeout_s = drain_timeout_s
        self.drain_deadline: float | None = None
        self.drain_announced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.drain_deadline is None and not self.should_exit:
            # Runs in the signal handler: only flags here; on_tick does the rest.
            self.lifecycle.drain()
            self.drain_deadline = time.monotonic() + self.drain_timeout_s
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.lifecycle.failure is not None:
            return True  # nothing can be served without an engine (/health says so meanwhile)
        if self.drain_deadline is not None and not self.should_exit:
            now = time.monotonic()
            if not self.drain_announced:  # the signal handler only set flags: said here, once
                self.drain_announced = True
                log.info("SIGTERM: draining %d generation(s); /ready answers 503",
                         self.lifecycle.generations)
            if self.lifecycle.idle:
                log.info("drained; stopping")
                self.should_exit = True
            elif now >= self.drain_deadline + ABORT_GRACE_S:
                log.warning("stopping with %d generation(s) not stored",
                            self.lifecycle.generations)
                self.should_exit = True
            elif now >= self.drain_deadline and not self.lifecycle.aborting:
                log.warning("drain timeout: aborting %d generation(s)", self.lifecycle.generations)
                self.lifecycle.abort_all()
            elif counter % 10 == 0:
                log.info("draining: %d generation(s) in flight", self.lifecycle.generations)
        return await super().on_tick(counter)


def serve(app: Starlette, settings: Settings, lifecycle: Lifecycle) -> int:
    """Serve until stopped; the process's exit code (1 if the engine failed to start, or died
    too often to be restarted in place: app/engine/supervisor.py)."""
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=settings.log_level,
        # Logging is configured once (app/logs.py); requests are logged by app/api/http/request_log.py.
        log_config=None, access_log=False,
        loop="uvloop", http="httptools", ws="websockets-sansio",
        ws_max_size=settings.max_body_bytes, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        timeout_keep_alive=KEEP_ALIVE_S,
        ssl_certfile=settings.ssl_certfile, ssl_keyfile=settings.ssl_keyfile)
    DrainingServer(config, lifecycle, settings.drain_timeout_s).run()
    return 1 if lifecycle.failure is not None else 0
