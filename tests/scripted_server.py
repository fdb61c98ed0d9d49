"""`python -m tests.scripted_server PORT DRAIN_TIMEOUT_S [REDIS_URL]`: the service with the
scripted engine, served exactly as `python -m app` serves it (app/server.py), for tests of the
process itself (signals, draining, exit codes) and of the page against it. Other settings come
from STREAMCHAT_* variables. Each reply is 100 tokens, 20 ms apart, unless the test says:
SCRIPTED_REPLY (a JSON list of the tokens every reply is made of), SCRIPTED_DELAY_S (between
tokens) and SCRIPTED_LOAD_S (how long the engine takes to load: /ready says 503 until then)."""

from __future__ import annotations

import asyncio
import os
import sys

import orjson

from app.lifecycle import Lifecycle
from app.logs import setup_logging
from app.main import create_app
from app.server import serve
from app.settings import from_env
from tests.fakes import ScriptedEngine


class SlowLoadingEngine(ScriptedEngine):
    """Loads for `load_s` seconds, as a real engine does while it reads its weights."""

    def __init__(self, *args: object, load_s: float, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.load_s = load_s
        self._ready = False

    async def start(self) -> None:
        await asyncio.sleep(self.load_s)
        await super().start()


if __name__ == "__main__":
    settings = from_env(port=int(sys.argv[1]), drain_timeout_s=float(sys.argv[2]),
                        redis_url=sys.argv[3] if len(sys.argv) > 3 else None,
                        log_level="info", log_format="json")
    setup_logging(settings.log_level, settings.log_format, settings.log_content)
    tokens = orjson.loads(os.environ.get("SCRIPTED_REPLY", '["w"]').encode())
    if "SCRIPTED_REPLY" not in os.environ:
        tokens *= 100
    delay_s = float(os.environ.get("SCRIPTED_DELAY_S", "0.02"))
    engine = SlowLoadingEngine(tokens=tokens, delay_s=delay_s, max_model_len=4096,
                               load_s=float(os.environ.get("SCRIPTED_LOAD_S", "0")))
    lifecycle = Lifecycle(engine)
    sys.exit(serve(create_app(settings, engine, lifecycle=lifecycle), settings, lifecycle))
