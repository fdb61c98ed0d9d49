"""`python -m tests.scripted_server PORT DRAIN_TIMEOUT_S [REDIS_URL]`: the service with the
scripted engine, served exactly as `python -m app` serves it (app/server.py), for tests of the
process itself (signals, draining, exit codes) and of the page against it. Other settings come
from STREAMCHAT_* variables. Each reply is 100 tokens, 20 ms apart."""

from __future__ import annotations

import sys

from app.lifecycle import Lifecycle
from app.logs import setup_logging
from app.main import create_app
from app.server import serve
from app.settings import from_env
from tests.fakes import ScriptedEngine

if __name__ == "__main__":
    settings = from_env(port=int(sys.argv[1]), drain_timeout_s=float(sys.argv[2]),
                        redis_url=sys.argv[3] if len(sys.argv) > 3 else None,
                        log_level="info", log_format="json")
    setup_logging(settings.log_level, settings.log_format, settings.log_content)
    engine = ScriptedEngine(tokens=["w"] * 100, delay_s=0.02, max_model_len=4096)
    lifecycle = Lifecycle(engine)
    sys.exit(serve(create_app(settings, engine, lifecycle=lifecycle), settings, lifecycle))
