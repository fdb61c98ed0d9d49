"""The server side of the transport ceiling: the real app on a token source, pinned to one core.

`python -m benchmarks.transport_server --port P --tokens-per-s R --response KIND --core C`

KIND:
- `app`: streamchat as it ships (`create_app`, served by `app.server.serve`), on the token
  source instead of vLLM;
- `sse-starlette`: the same app, with its session SSE responses sent through sse-starlette's
  `EventSourceResponse` (ServerSentEvent objects, its own 15 s ping), to decide between the two;
- `starlette`: the floor, with no service at all: one Starlette route that streams the token
  source's deltas as SSE frames through a plain `StreamingResponse`.
All three run under the same uvicorn settings (uvloop, httptools) as the service.
"""

from __future__ import annotations

import argparse
import itertools
import os
from collections.abc import AsyncIterator
from typing import Any

import orjson

from benchmarks.token_source import TokenSource

# Limits that protect a real engine or a real user, opened wide: what is measured here is the
# path a token takes, not the admission of thousands of streams from one client address.
OPEN_LIMITS: dict[str, Any] = {
    "rate_limit_rpm": 0, "rate_limit_tpm": 0, "max_streams_per_key": 100_000,
    "max_sessions_per_key": 100_000, "max_sessions": 100_000, "max_reply_tokens": 1 << 20,
    "max_reply_seconds": 3600.0, "max_concurrent_generations": 8192, "max_prefilling": 8192,
    "orphan_grace_s": 0.0, "log_level": "warning",
}


def _use_sse_starlette() -> None:
    """Session SSE responses through sse-starlette, as docs/DESIGN.md's first draft had it."""
    from sse_starlette.sse import EventSourceResponse, ServerSentEvent

    import app.api.sessions.sessions as sessions
    from app.streams import Event

    async def server_sent_events(events: AsyncIterator[Event | None]) -> AsyncIterator[ServerSentEvent]:
        async for event in events:
            if event is not None:  # sse-starlette sends its own pings
                yield ServerSentEvent(data=event.payload.decode(), event=event.type,
                                      id=str(event.seq) if event.numbered else None)

    def response(events: AsyncIterator[ServerSentEvent], **_: Any) -> EventSourceResponse:
        return EventSourceResponse(events, ping=15, headers={"x-accel-buffering": "no"})

    sessions.event_frames = server_sent_events  # type: ignore[assignment]
    sessions.EventStreamResponse = response  # type: ignore[assignment,misc]


def _starlette_floor(source: TokenSource) -> Any:
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    from app.engine.base import GenerationParams

    requests = itertools.count()

    async def frames(max_tokens: int, request_id: str) -> AsyncIterator[bytes]:
        params = GenerationParams(max_tokens=max_tokens)
        async for delta in source.stream([1, 2, 3], params, request_id):
            yield b"event: token\ndata: " + orjson.dumps({"text": delta.text}) + b"\n\n"

    async def stream(request: Request) -> StreamingResponse:
        body = orjson.loads(await request.body())
        return StreamingResponse(frames(int(body["max_tokens"]), f"floor-{next(requests)}"),
                                 media_type="text/event-stream")

    async def ready(_: Request) -> JSONResponse:
        return JSONResponse({"ready": True})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await source.start()
        yield
        await source.shutdown()

    return Starlette(routes=[Route("/stream", stream, methods=["POST"]),
                             Route("/ready", ready)], lifespan=lifespan)


def memory_debug(folder: str, *, trace_now: bool = True) -> None:
    """STREAMCHAT_MEMDEBUG=DIR (benchmarks/stream_memory.py, benchmarks/soak.py): on SIGUSR1 a
    tracemalloc snapshot in DIR/<name>.tracemalloc and the gc's objects by type (with the
    traced total and the asyncio task count) in DIR/<name>.gc.json, <name> read from DIR/next.
    tracemalloc starts now, or with `trace_now=False` at the first dump (the soak's end of
    warm-up: started with a process that imports vLLM, the imports alone took over 5 minutes
    on 2 busy cores)."""
    import asyncio
    import collections
    import gc
    import json
    import signal
    import tracemalloc
    from pathlib import Path

    if trace_now:
        tracemalloc.start(25)
    where = Path(folder)

    def dump(*_: object) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(25)
        name = (where / "next").read_text().strip()
        gc.collect()
        try:
            tasks = len(asyncio.all_tasks())
        except RuntimeError:
            tasks = -1
        tracemalloc.take_snapshot().dump(str(where / f"{name}.tracemalloc"))
        types = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
        (where / f"{name}.gc.tmp").write_text(json.dumps(
            {"traced": tracemalloc.get_traced_memory()[0], "tasks": tasks, "types": types}))
        (where / f"{name}.gc.tmp").rename(where / f"{name}.gc.json")

    signal.signal(signal.SIGUSR1, dump)


def main() -> None:
    if folder := os.environ.get("STREAMCHAT_MEMDEBUG"):
        memory_debug(folder)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transport_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens-per-s", type=float, default=0.0, help="per stream; 0: flat out")
    parser.add_argument("--response", choices=("app", "sse-starlette", "starlette"), default="app")
    parser.add_argument("--core", type=int, default=0, help="the one CPU core to run on")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.core})

    from app.lifecycle import Lifecycle
    from app.logs import setup_logging
    from app.main import create_app
    from app.server import serve
    from app.settings import from_env

    settings = from_env({}, port=args.port, **OPEN_LIMITS)
    setup_logging(settings.log_level, "text", False)
    source = TokenSource(args.tokens_per_s or None)
    if args.response == "starlette":
        import uvicorn

        uvicorn.run(_starlette_floor(source), host="127.0.0.1", port=args.port, loop="uvloop",
                    http="httptools", log_level="warning", access_log=False)
        return
    if args.response == "sse-starlette":
        _use_sse_starlette()
    lifecycle = Lifecycle(source)
    serve(create_app(settings, source, lifecycle=lifecycle), settings, lifecycle)


if __name__ == "__main__":
    main()
