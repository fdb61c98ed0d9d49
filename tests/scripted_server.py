"""`python -m tests.scripted_server PORT DRAIN_TIMEOUT_S`: the service with the scripted engine,
served exactly as `python -m app` serves it (app/server.py), for tests of the process itself:
signals, draining, exit codes. Each reply is 100 tokens, 20 ms apart."""

from __future__ import annotations

import logging
import sys

from app.lifecycle import Lifecycle
from app.main import create_app
from app.server import serve
from app.settings import Settings
from tests.fakes import ScriptedEngine

if __name__ == "__main__":
    logging.basicConfig(level="INFO")
    settings = Settings(port=int(sys.argv[1]), drain_timeout_s=float(sys.argv[2]),
                        log_level="warning")
    engine = ScriptedEngine(tokens=["w"] * 100, delay_s=0.02, max_model_len=4096)
    lifecycle = Lifecycle(engine)
    sys.exit(serve(create_app(settings, engine, lifecycle=lifecycle), settings, lifecycle))
