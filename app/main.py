"""The one place that wires the service together: `create_app(settings, engine, store)`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from app.api import ops, sessions
from app.api.errors import EXCEPTION_HANDLERS
from app.chat import ChatService
from app.engine.base import Engine
from app.sessions.memory import MemorySessionStore
from app.sessions.store import SessionStore
from app.settings import Settings

log = logging.getLogger("streamchat")
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def build_engine(settings: Settings) -> Engine:
    """The real engine for these settings (converts the default model on first use)."""
    from app.engine.vllm import create_engine

    return create_engine(settings.model, settings.model_name, settings.max_model_len,
                         settings.engine_args, settings.cache_dir)


def create_app(settings: Settings, engine: Engine | None = None,
               store: SessionStore | None = None) -> Starlette:
    store = store if store is not None else MemorySessionStore()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal engine
        if engine is None:
            engine = await asyncio.to_thread(build_engine, settings)
        app.state.engine = engine
        app.state.chat = ChatService(engine, store, default_max_tokens=settings.default_max_tokens,
                                     orphan_grace_s=settings.orphan_grace_s)
        # Start the engine in the background: /health answers and /ready says 503 meanwhile.
        starter = asyncio.create_task(_start_engine(app, engine))
        try:
            yield
        finally:
            app.state.draining = True
            starter.cancel()
            await app.state.chat.shutdown()
            await engine.shutdown()
            await store.close()

    app = Starlette(
        routes=[*ops.routes, *sessions.routes, Route("/", index, methods=["GET"]),
                Mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.draining = False
    app.state.engine_failed = False
    return app


async def _start_engine(app: Starlette, engine: Engine) -> None:
    try:
        await engine.start()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        app.state.engine_failed = True
        log.error("%s", exc)
        # Nothing useful can be served without an engine: stop the server, exit non-zero.
        app.state.exit_code = 1
        stop = getattr(app.state, "stop_server", None)
        if stop is not None:
            stop()
        else:
            os.kill(os.getpid(), signal.SIGTERM)


async def index(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})
