"""The one place that wires the service together: `create_app(settings, engine)`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from app.adapters import Adapters, registry_for
from app.admission import Admission
from app.admission.calibrate import keep_objective
from app.admission.pacing import token_limit
from app.api import conversations, fine_tuning, inference, openai, openapi, ops, responses, sessions
from app.api.http.auth import AuthMiddleware
from app.api.http.browser_guard import BrowserGuard, cors_middleware
from app.api.http.errors import EXCEPTION_HANDLERS
from app.api.http.page import STATIC_DIR, PageFiles, page
from app.api.http.raw_send import StreamchatApp
from app.api.http.request_log import RequestLog
from app.api.http.shed import Shed
from app.api.http.state import Services, State
from app.auth import Authenticator
from app.backends import build_backends
from app.chat import ChatService
from app.completions import CompletionService
from app.engine.base import Engine
from app.engine.supervisor import EngineSupervisor
from app.errors import ConfigError, StoreUnavailable, StreamchatError
from app.finetune.service import build_fine_tuning
from app.lifecycle import Lifecycle
from app.limits import KeyLimits
from app.replies.detached import DetachedStreams
from app.replies.warmup import PrefixWarmer
from app.served_models import ServedModels
from app.sessions.store import SessionStore
from app.settings import Settings
from app.streams import ReplyLogs

log = logging.getLogger("streamchat")
DEFAULT_MAX_ACTIVE = 128  # vLLM's max_num_seqs for an engine on a CPU, until it says its own


def build_engine(settings: Settings) -> Engine:
    """The real engine for these settings (converts the default model on first use)."""
    from app.engine.config import create_engine

    # LoRA for fine-tuning or named adapters; vLLM's own arguments, which a user's win over.
    lora = {"enable_lora": True, "max_lora_rank": settings.max_lora_rank,
            "max_loras": settings.max_loras} if settings.lora else {}
    return create_engine(settings.model, settings.model_name, settings.max_model_len,
                         {**lora, **settings.engine_args}, settings.cache_dir)


def create_app(settings: Settings, engine: Engine, *, lifecycle: Lifecycle | None = None,
               store: SessionStore | None = None, logs: ReplyLogs | None = None,
               calibrate: bool = False) -> Starlette:
    """The ASGI app. The engine starts in the background once the app starts: /health answers
    and /ready says 503 meanwhile. A bad auth configuration raises ConfigError here. With
    `calibrate` (the real engine), the engine's pace is measured once it runs, for the
    first-token objective's default (app/admission/calibrate.py)."""
    lifecycle = lifecycle if lifecycle is not None else Lifecycle(engine)
    backends = build_backends(settings)
    backends.store, backends.logs = store or backends.store, logs or backends.logs
    lifecycle.store = backends.health  # Redis unreachable: /ready answers 503
    store, logs, buckets, records, leases = (backends.store, backends.logs, backends.buckets,
                                             backends.records, backends.leases)
    authenticator = Authenticator.from_settings(settings)
    limits = None if authenticator is None else KeyLimits(
        buckets, rpm=settings.rate_limit_rpm, tpm=settings.rate_limit_tpm,
        max_streams=settings.max_streams_per_key, streams=backends.streams)
    # Until the engine says how many requests it runs at once, the setting or vLLM's default.
    admission = Admission(max_active=settings.max_concurrent_generations or DEFAULT_MAX_ACTIVE,
                          max_queue=settings.max_queue, max_prefilling=settings.max_prefilling,
                          anticipation_s=settings.anticipation_ms / 1000)
    adapters = Adapters(engine, enabled=settings.lora, max_rank=settings.max_lora_rank,
                        registry=registry_for(backends.records), folder=settings.cache_dir / "lora")
    models = ServedModels(engine, settings.model_aliases, adapters)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        if settings.redis_url is not None:
            await _check_redis(store, settings.redis_url)
        backends.start()
        chat = ChatService(engine, store, logs, lifecycle, admission,
                           default_max_tokens=settings.default_max_tokens,
                           orphan_grace_s=settings.orphan_grace_s, limits=limits,
                           max_reply_tokens=settings.max_reply_tokens,
                           max_reply_seconds=settings.max_reply_seconds,
                           max_sessions_per_key=settings.max_sessions_per_key,
                           models=models, reasoning_parser=settings.reasoning_parser,
                           leases=leases)
        await chat.start()
        warmer = PrefixWarmer(chat.gate, store, chat.replies,
                              default_max_tokens=settings.default_max_tokens
                              ) if settings.prefix_warmup else None
        completions = CompletionService(engine, lifecycle, admission,
                                        default_max_tokens=settings.default_max_tokens,
                                        max_reply_tokens=settings.max_reply_tokens,
                                        max_seconds=settings.max_reply_seconds, limits=limits)
        detached = DetachedStreams(logs, leases, orphan_grace_s=settings.orphan_grace_s)
        jobs = build_fine_tuning(settings, records, leases, adapters)
        if jobs is not None:
            await jobs.start()  # fails what a previous process left running

        async def serve_adapters() -> None:
            """Once the engine runs: the base model's `created` as every replica lists it, the
            adapters named at start (a bad one stops the start, as vLLM's --lora-modules),
            those the other replicas serve (app/adapters/), followed from now on, and in
            memory mode those of fine-tuning jobs that succeeded before."""
            with contextlib.suppress(StoreUnavailable):
                models.created = await adapters.registry.first_served(models.base, models.created)
            for name, path in settings.lora_modules:
                try:
                    await adapters.configured(name, path)
                except StreamchatError as exc:
                    raise ConfigError(f"STREAMCHAT_LORA_MODULES: {name}={path}: "
                                      f"{exc.message}") from None
            await adapters.start()
            if jobs is not None and not adapters.registry.shared:
                await jobs.restore_adapters()

        async def restored() -> None:  # a new engine after a death: what the old one had
            await adapters.restore()
            _serve(engine, admission, settings.max_concurrent_generations)

        async def started() -> None:
            measured = await keep_objective(chat.gate, admission.objective,
                                            settings.ttft_slo_ms, calibrate)
            admission.pacing.max_tokens = token_limit(
                settings.max_prefill_tokens,
                admission.objective.predictor.prefill_tps if measured else None)
            await _started(engine, admission, settings.max_concurrent_generations,
                           settings.tool_call_parser, settings.reasoning_parser, serve_adapters)

        supervisor = EngineSupervisor(
            engine, lifecycle, started=started,
            restarted=restored, max_deaths=settings.engine_max_deaths,
            window_s=settings.engine_death_window_s)
        starter = asyncio.create_task(supervisor.run())
        try:
            yield {"services": Services(settings, engine, lifecycle, chat, completions, limits,
                                        admission, time.time(), models, detached, records,
                                        adapters, jobs)}
        finally:
            lifecycle.drain()
            starter.cancel()
            if jobs is not None:
                await jobs.close()  # kills running jobs: failed, "the service stopped"
            if warmer is not None:
                await warmer.close()
            await chat.shutdown()
            await detached.close()
            await adapters.close()
            await engine.shutdown()
            await backends.close()

    return StreamchatApp(
        routes=[*ops.routes, *sessions.routes, *openai.routes, *responses.routes, *fine_tuning.routes,
                *conversations.routes,
                *inference.routes, *openapi.routes,
                Route("/", page("index.html"), methods=["GET"]),
                Route("/docs", page("docs.html"), methods=["GET"]),  # Swagger UI, vendored
                Mount("/static", PageFiles(StaticFiles(directory=STATIC_DIR, check_dir=False)),
                      name="static")],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=lifespan,
        # Outermost first; CORS outside auth, so that a page can read a 401 or 429 too.
        middleware=[Middleware(RequestLog),
                    Middleware(BrowserGuard, hosts=settings.served_hosts,
                               origins=settings.cors_origins),
                    *cors_middleware(settings),
                    Middleware(AuthMiddleware, authenticator=authenticator, limits=limits,
                               metrics_public=settings.metrics_public),
                    Middleware(Shed, admission=admission, lifecycle=lifecycle)],
    )


async def _check_redis(store: SessionStore, url: str) -> None:
    try:
        await store.count()
    except Exception as exc:
        raise ConfigError(f"STREAMCHAT_REDIS_URL: cannot reach Redis at {url}: {exc}") from None


async def _started(engine: Engine, admission: Admission, max_concurrent: int | None,
                   tool_call_parser: str | None, reasoning_parser: str | None = None,
                   serve_adapters: Callable[[], Awaitable[None]] | None = None) -> None:
    """Once the engine first runs (app/engine/supervisor.py): what it raises stops the start."""
    if serve_adapters is not None:
        await serve_adapters()
    if tool_call_parser is not None:  # vLLM checks --tool-call-parser at start too
        engine.tool_parser(tool_call_parser, None)
    if reasoning_parser is not None:  # and --reasoning-parser
        engine.reasoning_parser(reasoning_parser)
    _serve(engine, admission, max_concurrent)


def _serve(engine: Engine, admission: Admission, max_concurrent: int | None) -> None:
    """An engine (the first, or one restarted in place) takes requests from here on."""
    # The engine runs max_num_seqs requests at once: let in that many, no more.
    admission.resize(max_concurrent or engine.max_num_seqs or DEFAULT_MAX_ACTIVE)
    tokens = admission.pacing.max_tokens
    log.info("admission: %d generations in the engine at once (%d of them prefilling, with %s "
             "prompt tokens together), %d more may wait", admission.max_active,
             admission.pacing.max_prompts, "any number of" if tokens is None else f"at most {tokens}",
             admission.max_queue)
    # Everything loaded so far (torch, vLLM, the tokenizer) lives as long as the engine:
    # freeze it so that the oldest-generation collections skip it (the supervisor unfreezes
    # it before a restart). Without this, full collections paused streams by 10-20 ms (ITL
    # p99 at concurrency 1: 33 ms vs 19 ms for vLLM's server, which does the same freeze).
    gc.collect()
    gc.freeze()
    # A collection of the youngest generation walks every young object still alive, and under
    # load that is each stream's futures, handles and generators in flight (11,000 at 1,000
    # streams, ~4 ms a walk) whatever the threshold: the default (700 allocations) walked them
    # hundreds of times a second, a fifth of the server's CPU per token event.
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])


YOUNG_GC_THRESHOLD = 50_000  # allocations between collections of the youngest generation
